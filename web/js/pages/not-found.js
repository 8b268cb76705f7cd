/*
 * The page of an address that names no page.
 */
import { el } from "../dom.js";

export function notFoundPage(view) {
  view.setTitle("Page not found");
  view.mount(view.h1("Page not found"),
    el("p", { class: "card empty-state" }, "There is no such page. ", el("a", { href: "#/portfolio", text: "Go to the portfolio" })));
}
