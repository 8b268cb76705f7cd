//! The one list shape, and whitelisted sorting for list queries.
//!
//! Every collection answers `{items, per_page, …}` and takes `per_page` (1 to 200, default 50). Lists a client
//! jumps around in (companies, users, predictions, bulk jobs, …) are numbered pages ([`Paginated`]: `page`,
//! `total`, `total_pages`); lists that only grow and are read newest first (alerts, the audit trail) are read
//! with a cursor ([`CursorList`]: `next_cursor`, passed back as `cursor`), which stays cheap however deep the
//! reader goes and never skips or repeats a row when new ones arrive.

use serde::{Deserialize, Serialize};

pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 200;

/// `?page=&per_page=`: 1-based page, 1..=200 items per page.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 200 (default 50).
    pub per_page: Option<u32>,
}

/// A validated page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    pub fn validate(self) -> Result<Page, String> {
        let page = self.page.unwrap_or(1);
        if page == 0 || page > 1_000_000 {
            return Err("page must be between 1 and 1000000".into());
        }
        Ok(Page {
            page,
            per_page: per_page(self.per_page)?,
        })
    }
}

/// `per_page` checked against its bounds (default [`DEFAULT_PER_PAGE`]).
pub fn per_page(requested: Option<u32>) -> Result<u32, String> {
    let per_page = requested.unwrap_or(DEFAULT_PER_PAGE);
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(format!("per_page must be between 1 and {MAX_PER_PAGE}"));
    }
    Ok(per_page)
}

/// One stretch of a list read newest first by id: at most `per_page` rows older than `cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub per_page: u32,
    /// `None`: from the newest row.
    pub before: Option<uuid::Uuid>,
}

impl Cursor {
    pub fn new(per_page: Option<u32>, cursor: Option<uuid::Uuid>) -> Result<Self, String> {
        Ok(Self {
            per_page: self::per_page(per_page)?,
            before: cursor,
        })
    }

    pub fn limit(self) -> i64 {
        i64::from(self.per_page)
    }
}

/// One stretch of a list read with a cursor, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CursorList<T> {
    pub items: Vec<T>,
    pub per_page: u32,
    /// Pass as `cursor` for the next (older) rows; absent when there are none.
    pub next_cursor: Option<uuid::Uuid>,
}

impl<T> CursorList<T> {
    /// `id` is the cursor of a row (its id: the list's order).
    pub fn new(items: Vec<T>, cursor: Cursor, id: impl Fn(&T) -> uuid::Uuid) -> Self {
        let next_cursor = (items.len() == cursor.per_page as usize)
            .then(|| items.last().map(id))
            .flatten();
        Self {
            items,
            per_page: cursor.per_page,
            next_cursor,
        }
    }
}

impl Page {
    pub fn limit(self) -> i64 {
        i64::from(self.per_page)
    }

    pub fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    /// `LIMIT n OFFSET m`, the numbers written in (integers): a statement's cached plan is made for its page
    /// size, where a parameter is planned as a tenth of the rows (and the first page is one statement).
    pub fn literal(self) -> String {
        format!("LIMIT {} OFFSET {}", self.limit(), self.offset())
    }
}

/// One page of a list, with what a client needs to fetch the others.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
    pub total_pages: i64,
}

impl<T> Paginated<T> {
    pub fn new(items: Vec<T>, page: Page, total: i64) -> Self {
        let per_page = i64::from(page.per_page);
        Self {
            items,
            page: page.page,
            per_page: page.per_page,
            total,
            total_pages: (total + per_page - 1) / per_page,
        }
    }
}

/// `sort=field` or `sort=-field` against a whitelist of (name, SQL expression); anything else is refused, so
/// no client text ever reaches the SQL. Rows without a value come last either way; ties are broken by id for a
/// stable order.
pub fn order_by(sort: Option<&str>, allowed: &[(&str, &str)], default: &str) -> Result<String, String> {
    let sort = sort.unwrap_or(default);
    let (field, direction) = match sort.strip_prefix('-') {
        Some(field) => (field, "DESC"),
        None => (sort, "ASC"),
    };
    let expression = allowed
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, expression)| *expression)
        .ok_or_else(|| {
            let names: Vec<_> = allowed.iter().map(|(name, _)| *name).collect();
            format!("sort must be one of {} (prefix '-' for descending)", names.join(", "))
        })?;
    Ok(format!("{expression} {direction} NULLS LAST, id {direction}"))
}

/// A `LIKE` pattern matching `text` anywhere, with the pattern's metacharacters escaped.
pub fn contains_pattern(text: &str) -> String {
    format!("%{}%", escape_like(text))
}

/// `text` as a `LIKE` pattern that matches only itself.
pub fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded() {
        let page = PageRequest {
            page: None,
            per_page: None,
        }
        .validate()
        .unwrap();
        assert_eq!((page.limit(), page.offset()), (50, 0));
        let page = PageRequest {
            page: Some(3),
            per_page: Some(20),
        }
        .validate()
        .unwrap();
        assert_eq!(page.offset(), 40);
        assert!(
            PageRequest {
                page: Some(0),
                per_page: None
            }
            .validate()
            .is_err()
        );
        assert!(
            PageRequest {
                page: None,
                per_page: Some(201)
            }
            .validate()
            .is_err()
        );
        assert_eq!(Paginated::new(Vec::<u8>::new(), page, 41).total_pages, 3);
    }

    #[test]
    fn only_whitelisted_sorts_reach_sql() {
        let allowed = [("name", "lower(name)"), ("created_at", "created_at")];
        assert_eq!(
            order_by(Some("-name"), &allowed, "name").unwrap(),
            "lower(name) DESC NULLS LAST, id DESC"
        );
        assert_eq!(
            order_by(None, &allowed, "created_at").unwrap(),
            "created_at ASC NULLS LAST, id ASC"
        );
        assert!(order_by(Some("name; DROP TABLE users"), &allowed, "name").is_err());
    }

    #[test]
    fn like_metacharacters_are_literal() {
        assert_eq!(contains_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
