/*
 * Server-Sent Events over fetch (EventSource cannot send the Authorization header): an incremental
 * text/event-stream parser, and followEvents, which follows a stream and reopens it when it drops.
 */
import { isAbort, sleep } from "./dom.js";
import { API, ApiError, authFetch, errorFrom } from "./api.js";
import { reportBug } from "./ui.js";

/** Returned by an SSE event handler to end the stream for good. */
export const STOP = Symbol("stop");

/** An incremental text/event-stream parser: feed it decoded text in chunks of any size. */
class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.type = "";
    this.data = [];
    this.lastId = null;
  }

  feed(text) {
    this.buffer += text;
    // A trailing "\r" may be the first half of "\r\n": keep it until the next chunk.
    const end = this.buffer.endsWith("\r") ? this.buffer.length - 1 : this.buffer.length;
    const lines = this.buffer.slice(0, end).split(/\r\n|\r|\n/);
    this.buffer = lines.pop() + this.buffer.slice(end);
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") this.lastId = value;
  }

  dispatch() {
    if (this.data.length) this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastId });
    this.type = "";
    this.data = [];
  }
}

/**
 * Follows an SSE endpoint until `signal` aborts or `onEvent` returns STOP. A dropped or ended stream is
 * reopened after a back-off (1 s doubling to 30 s); a refused one (403, 404) is given up. `onState`
 * hears "open", "reconnecting" and "failed".
 */
export async function followEvents(path, { signal, onEvent, onState = () => {} }) {
  let delay = 1000;
  while (!signal.aborted) {
    let stopped = false;
    try {
      const response = await authFetch(`${API}${path}`, { signal, headers: { Accept: "text/event-stream" } });
      if (!response.ok) throw await errorFrom(response);
      onState("open");
      delay = 1000;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser((event) => {
        if (stopped) return;
        try {
          if (onEvent(event) === STOP) stopped = true;
        } catch (error) {
          reportBug(error);
        }
      });
      while (!stopped) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
      if (stopped) reader.cancel().catch(() => {});
    } catch (error) {
      if (isAbort(error) || signal.aborted) return;
      if (error instanceof ApiError && [401, 403, 404, 422].includes(error.status)) {
        onState("failed", error);
        return;
      }
      // A network drop (TypeError from the reader) or a 5xx/429: try again below.
    }
    if (stopped || signal.aborted) return;
    onState("reconnecting", delay);
    try {
      await sleep(delay, signal);
    } catch {
      return;
    }
    delay = Math.min(delay * 2, 30_000);
  }
}
