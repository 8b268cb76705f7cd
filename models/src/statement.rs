//! The financial statement of one period: canonical line items, every one optional.
//!
//! Amounts are in **thousands** of the reporting currency (the unit of the Polish data the trained models
//! learned from; only the two size attributes, log total assets and working capital, depend on it).
//! Income-statement items cover the period (a fiscal year, or a quarter for quarterly statements).
//!
//! Parsing is strict: an unknown field, a non-numeric value or an absurd magnitude is an error that names
//! the field; `null` or an absent field is "not reported".

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest magnitude accepted for a line item (in thousands: 10^15 thousand = 10^18 currency units,
/// far beyond any company). Larger values are data errors, not companies.
pub const MAX_ABS_AMOUNT: f64 = 1e15;

macro_rules! statement {
    ($( $(#[doc = $doc:literal])+ $field:ident ),+ $(,)?) => {
        /// Canonical line items of one period. Every item is optional; ratios needing a missing item are
        /// missing themselves.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Statement {
            $( $(#[doc = $doc])+ #[serde(default, skip_serializing_if = "Option::is_none")] pub $field: Option<f64>, )+
        }

        impl Statement {
            /// The name of every line item, in declaration order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),+];

            /// `(name, value)` of every line item.
            pub fn items(&self) -> [(&'static str, Option<f64>); Self::FIELDS.len()] {
                [$((stringify!($field), self.$field)),+]
            }

            /// `(name, value)` of every line item, to write.
            fn items_mut(&mut self) -> [(&'static str, &mut Option<f64>); Self::FIELDS.len()] {
                [$((stringify!($field), &mut self.$field)),+]
            }
        }
    };
}

statement! {
    /// Total assets (balance sheet total).
    total_assets,
    /// Current (short-term) assets.
    current_assets,
    /// Cash and cash equivalents.
    cash,
    /// Short-term securities (marketable securities).
    short_term_securities,
    /// Trade and other receivables.
    receivables,
    /// Inventories.
    inventories,
    /// Fixed (non-current) assets.
    fixed_assets,
    /// Total liabilities.
    total_liabilities,
    /// Short-term (current) liabilities.
    current_liabilities,
    /// Long-term liabilities.
    long_term_liabilities,
    /// Long-term (interest-bearing) debt.
    long_term_debt,
    /// Total (interest-bearing) debt, short- and long-term.
    total_debt,
    /// Book value of equity.
    equity,
    /// Share capital.
    share_capital,
    /// Retained earnings.
    retained_earnings,
    /// Sales (revenue) of the period.
    sales,
    /// Sales of the previous period of the same length.
    previous_sales,
    /// Cost of products sold.
    cost_of_products_sold,
    /// Gross profit: sales minus cost of products sold.
    gross_profit,
    /// Profit before tax (what the Polish data calls "gross profit", Polish *zysk brutto*).
    profit_before_tax,
    /// Profit before tax summed over the last three years.
    gross_profit_3y,
    /// Profit on sales.
    profit_on_sales,
    /// Operating expenses.
    operating_expenses,
    /// Selling, general and administrative expenses.
    sga_expenses,
    /// Total costs.
    total_costs,
    /// Depreciation and amortization.
    depreciation,
    /// Earnings before interest and taxes.
    ebit,
    /// Earnings before interest, taxes, depreciation and amortization.
    ebitda,
    /// Profit on operating activities.
    profit_on_operating_activities,
    /// Interest expense.
    interest_expense,
    /// Financial expenses (mostly interest).
    financial_expenses,
    /// Extraordinary items.
    extraordinary_items,
    /// Net profit (net income).
    net_profit,
}

/// Why a statement was refused. `field` names the offending item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatementError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("the statement reports no line item")]
    Empty,
}

impl Statement {
    /// Parses a statement from JSON text, naming the field of any error.
    pub fn from_json(json: &str) -> Result<Self, StatementError> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| StatementError::Invalid {
            field: "statement".into(),
            message: e.to_string(),
        })?;
        Self::from_value(value)
    }

    /// Parses a statement from a JSON object, naming the field of any error.
    pub fn from_value(value: serde_json::Value) -> Result<Self, StatementError> {
        if !value.is_object() {
            return Err(StatementError::Invalid {
                field: "statement".into(),
                message: "must be an object of line items".into(),
            });
        }
        let statement: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            StatementError::Invalid {
                field: if field == "." { "statement".into() } else { field },
                message: e.into_inner().to_string(),
            }
        })?;
        statement.validate()?;
        Ok(statement)
    }

    /// Checks magnitudes (`|x| <= MAX_ABS_AMOUNT`, finite) and that at least one item is reported.
    pub fn validate(&self) -> Result<(), StatementError> {
        let mut reported = 0;
        for (field, value) in self.items() {
            let Some(value) = value else { continue };
            if !value.is_finite() || value.abs() > MAX_ABS_AMOUNT {
                return Err(StatementError::Invalid {
                    field: field.into(),
                    message: format!("{value} is outside ±{MAX_ABS_AMOUNT:e} (amounts are in thousands)"),
                });
            }
            reported += 1;
        }
        if reported == 0 {
            return Err(StatementError::Empty);
        }
        Ok(())
    }

    /// EBITDA as reported, else EBIT plus depreciation.
    pub fn ebitda_or_derived(&self) -> Option<f64> {
        self.ebitda.or_else(|| Some(self.ebit? + self.depreciation?))
    }

    /// Interest expense as reported, else financial expenses.
    pub fn interest_or_financial_expenses(&self) -> Option<f64> {
        self.interest_expense.or(self.financial_expenses)
    }

    /// Financial expenses as reported, else interest expense.
    pub fn financial_expenses_or_interest(&self) -> Option<f64> {
        self.financial_expenses.or(self.interest_expense)
    }

    /// Profit before tax as reported, else EBIT less financial expenses (or interest).
    pub fn profit_before_tax_or_derived(&self) -> Option<f64> {
        self.profit_before_tax
            .or_else(|| Some(self.ebit? - self.financial_expenses_or_interest()?))
    }
}

/// The income-statement items: flows over the period. Every other item is a balance at the period's end
/// (`gross_profit_3y` is a three-year figure already).
pub const FLOWS: [&str; 16] = [
    "sales",
    "cost_of_products_sold",
    "gross_profit",
    "profit_before_tax",
    "profit_on_sales",
    "operating_expenses",
    "sga_expenses",
    "total_costs",
    "depreciation",
    "ebit",
    "ebitda",
    "profit_on_operating_activities",
    "interest_expense",
    "financial_expenses",
    "extraordinary_items",
    "net_profit",
];

impl Statement {
    /// The trailing-twelve-months statement of four consecutive quarters (oldest first): each flow is the
    /// sum of the four quarters' (unknown if a quarter does not report it), each balance the latest
    /// quarter's. `previous_sales` is unknown: the twelve months before are not among the four quarters (a
    /// quarter's previous sales are its previous quarter's).
    pub fn trailing_twelve_months(quarters: &[Statement; 4]) -> Statement {
        let mut ttm = quarters[3].clone();
        for (name, value) in ttm.items_mut() {
            if name == "previous_sales" {
                *value = None;
            } else if FLOWS.contains(&name) {
                *value = quarters
                    .iter()
                    .map(|q| q.items().into_iter().find(|(n, _)| *n == name).and_then(|(_, v)| v))
                    .sum::<Option<f64>>();
            }
        }
        ttm
    }
}

/// A reporting period: a fiscal year, or a quarter of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReportingPeriod {
    pub year: u16,
    /// 1..=4 for a quarter; `None` for the whole fiscal year.
    pub quarter: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("reporting_year: {0:?} is not a year between 1900 and 2200")]
    Year(String),
    #[error("reporting_quarter: {0:?} is not a quarter (Q1..Q4 or 1..4)")]
    Quarter(String),
}

impl ReportingPeriod {
    /// Parses a year given as a number or a four-digit string (`2024`, `"2024"`, `2024.0`).
    pub fn parse_year(raw: &str) -> Result<u16, PeriodError> {
        let trimmed = raw.trim();
        let number = trimmed
            .strip_suffix(".0")
            .unwrap_or(trimmed)
            .parse::<u16>()
            .map_err(|_| PeriodError::Year(raw.to_owned()))?;
        if (1900..=2200).contains(&number) {
            Ok(number)
        } else {
            Err(PeriodError::Year(raw.to_owned()))
        }
    }

    /// Parses a quarter given as `Q1`..`Q4` (any case) or `1`..`4`; blank means none.
    pub fn parse_quarter(raw: &str) -> Result<Option<u8>, PeriodError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let digits = trimmed.strip_prefix(['Q', 'q']).unwrap_or(trimmed);
        match digits.parse::<u8>() {
            Ok(q @ 1..=4) => Ok(Some(q)),
            _ => Err(PeriodError::Quarter(raw.to_owned())),
        }
    }
}

impl ReportingPeriod {
    /// A quarter as one number, consecutive across years (`year * 4 + quarter - 1`); `None` for a fiscal year.
    pub fn quarter_index(self) -> Option<i32> {
        Some(i32::from(self.year) * 4 + i32::from(self.quarter?) - 1)
    }

    /// The `n` quarters before this quarter, oldest first; `None` for a fiscal year (or before 1900).
    pub fn previous_quarters(self, n: u8) -> Option<Vec<ReportingPeriod>> {
        let index = self.quarter_index()?;
        (1..=i32::from(n))
            .rev()
            .map(|back| {
                let i = index - back;
                Some(ReportingPeriod {
                    year: u16::try_from(i.div_euclid(4)).ok().filter(|y| *y >= 1900)?,
                    quarter: Some(u8::try_from(i.rem_euclid(4) + 1).ok()?),
                })
            })
            .collect()
    }
}

impl fmt::Display for ReportingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.quarter {
            Some(q) => write!(f, "{}-Q{q}", self.year),
            None => write!(f, "FY{}", self.year),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_quarters_make_a_trailing_year_of_flows_and_the_latest_balances() {
        let quarter = |sales: f64, assets: f64, profit: Option<f64>| Statement {
            sales: Some(sales),
            previous_sales: Some(sales - 1.0),
            total_assets: Some(assets),
            net_profit: profit,
            gross_profit_3y: Some(7.0),
            ..Statement::default()
        };
        let ttm = Statement::trailing_twelve_months(&[
            quarter(10.0, 100.0, Some(1.0)),
            quarter(20.0, 110.0, Some(2.0)),
            quarter(30.0, 120.0, None),
            quarter(40.0, 130.0, Some(4.0)),
        ]);
        assert_eq!(ttm.sales, Some(100.0));
        assert_eq!(ttm.total_assets, Some(130.0));
        assert_eq!(ttm.gross_profit_3y, Some(7.0));
        assert_eq!(ttm.net_profit, None, "a quarter without it: unknown");
        assert_eq!(ttm.previous_sales, None);
        for flow in FLOWS {
            assert!(Statement::FIELDS.contains(&flow), "{flow}");
        }
        let q = |year, quarter| ReportingPeriod {
            year,
            quarter: Some(quarter),
        };
        assert_eq!(
            q(2026, 1).previous_quarters(3),
            Some(vec![q(2025, 2), q(2025, 3), q(2025, 4)])
        );
        assert_eq!(q(2026, 4).previous_quarters(1), Some(vec![q(2026, 3)]));
        assert_eq!(q(1900, 2).previous_quarters(3), None);
        assert_eq!(
            ReportingPeriod {
                year: 2026,
                quarter: None
            }
            .previous_quarters(3),
            None
        );
    }

    #[test]
    fn a_statement_parses_with_missing_items() {
        let s = Statement::from_json(r#"{"total_assets": 1000, "net_profit": -12.5, "sales": null}"#).unwrap();
        assert_eq!(s.total_assets, Some(1000.0));
        assert_eq!(s.net_profit, Some(-12.5));
        assert_eq!(s.sales, None);
    }

    #[test]
    fn errors_name_the_field() {
        let err = Statement::from_json(r#"{"total_assets": "a lot"}"#).unwrap_err();
        assert!(
            matches!(&err, StatementError::Invalid { field, .. } if field == "total_assets"),
            "{err}"
        );
        let err = Statement::from_json(r#"{"total_asets": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `total_asets`"), "{err}");
        let err = Statement::from_json(r#"{"sales": 1e300}"#).unwrap_err();
        assert!(
            matches!(&err, StatementError::Invalid { field, .. } if field == "sales"),
            "{err}"
        );
        assert_eq!(Statement::from_json("{}").unwrap_err(), StatementError::Empty);
        assert!(Statement::from_json("[1,2]").is_err());
    }

    #[test]
    fn derived_items_fall_back_in_a_documented_order() {
        let s = Statement {
            ebit: Some(10.0),
            depreciation: Some(5.0),
            financial_expenses: Some(2.0),
            ..Default::default()
        };
        assert_eq!(s.ebitda_or_derived(), Some(15.0));
        assert_eq!(s.interest_or_financial_expenses(), Some(2.0));
    }

    #[test]
    fn periods_parse_the_forms_spreadsheets_use() {
        assert_eq!(ReportingPeriod::parse_year("2024").unwrap(), 2024);
        assert_eq!(ReportingPeriod::parse_year(" 2024.0 ").unwrap(), 2024);
        assert!(ReportingPeriod::parse_year("24").is_err());
        assert_eq!(ReportingPeriod::parse_quarter("q3").unwrap(), Some(3));
        assert_eq!(ReportingPeriod::parse_quarter("").unwrap(), None);
        assert!(ReportingPeriod::parse_quarter("Q5").is_err());
        let period = ReportingPeriod {
            year: 2024,
            quarter: Some(2),
        };
        assert_eq!(period.to_string(), "2024-Q2");
    }
}
