//! Feature engineering: the ratios each model reads, computed from a [`Statement`] or sent directly.
//!
//! A feature vector is `Vec<Option<f64>>` in the model's feature order; `None` is "missing". Every ratio
//! goes through [`div`]: a missing operand, a zero (or, where stated, non-positive) denominator, or a
//! non-finite result gives `None` — never a panic, never an infinity or NaN.
//!
//! Ratios sent by the client follow AccuNode's input rules ([`parse_value`]): numbers, numeric strings,
//! `null`/absent, and the strings `""`, `"NM"`, `"N/A"` and `"nan"` (missing); `"inf"`/`"-inf"` stand for
//! infinities (spreadsheets), which the scorecards' bins handle. Client ratios override computed ones.

use serde_json::{Map, Value};

use crate::statement::Statement;

/// The feature sets of the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSet {
    /// AccuNode's annual scorecard inputs (percent units for margins, returns and capital ratios).
    AccunodeAnnual,
    /// AccuNode's quarterly scorecard inputs.
    AccunodeQuarterly,
    /// The 64 attributes of the Polish bankruptcy data (`attr1`..`attr64`).
    Polish,
}

pub const ACCUNODE_ANNUAL: [&str; 5] = [
    "long_term_debt_to_total_capital",
    "total_debt_to_ebitda",
    "net_income_margin",
    "ebit_to_interest_expense",
    "return_on_assets",
];

pub const ACCUNODE_QUARTERLY: [&str; 4] = [
    "total_debt_to_ebitda",
    "sga_margin",
    "long_term_debt_to_total_capital",
    "return_on_capital",
];

/// What each Polish attribute measures as the data computes it (the UCI text, corrected where
/// [`POLISH_DEPARTURES`] says), in order: the words of reason codes.
pub const POLISH_LABELS: [&str; 64] = [
    "net profit / total assets",
    "total liabilities / total assets",
    "working capital / total assets",
    "current assets / short-term liabilities",
    "[(cash + short-term securities + receivables - short-term liabilities) / (operating expenses - depreciation)] * 365",
    "retained earnings / total assets",
    "profit before tax / total assets",
    "book value of equity / total liabilities",
    "sales / total assets",
    "equity / total assets",
    "(profit before tax + extraordinary items + financial expenses) / total assets",
    "profit before tax / short-term liabilities",
    "(profit before tax + depreciation) / sales",
    "profit before tax / total assets (as Attr18)",
    "(total liabilities * 365) / (profit before tax + depreciation)",
    "(profit before tax + depreciation) / total liabilities",
    "total assets / total liabilities",
    "profit before tax / total assets",
    "profit before tax / sales",
    "(inventory * 365) / sales",
    "sales (n) / sales (n-1)",
    "profit on operating activities / total assets",
    "net profit / sales",
    "profit before tax (in 3 years) / total assets",
    "(equity - share capital) / total assets",
    "(net profit + depreciation) / total liabilities",
    "profit on operating activities / financial expenses (interest cover)",
    "working capital / fixed assets",
    "logarithm of total assets",
    "(total liabilities - cash) / sales",
    "(profit before tax + interest) / sales",
    "(current liabilities * 365) / cost of products sold",
    "operating expenses / short-term liabilities",
    "operating expenses / total liabilities",
    "profit on sales / total assets",
    "total sales / total assets",
    "(current assets - inventories) / long-term liabilities",
    "constant capital / total assets",
    "profit on sales / sales",
    "(current assets - inventory - receivables) / short-term liabilities",
    "total liabilities / ((profit on operating activities + depreciation) * (365/12))",
    "profit on operating activities / sales",
    "rotation receivables + inventory turnover in days",
    "(receivables * 365) / sales",
    "net profit / inventory",
    "(current assets - inventory) / short-term liabilities",
    "(inventory * 365) / cost of products sold",
    "EBITDA (profit on operating activities - depreciation) / total assets",
    "EBITDA (profit on operating activities - depreciation) / sales",
    "current assets / total liabilities",
    "short-term liabilities / total assets",
    "short-term liabilities / cost of products sold",
    "equity / fixed assets",
    "constant capital / fixed assets",
    "working capital",
    "(sales - cost of products sold) / sales",
    "net profit / equity",
    "total costs / total sales",
    "long-term liabilities / equity",
    "sales / inventory",
    "sales / receivables",
    "(short-term liabilities * 365) / sales",
    "sales / short-term liabilities",
    "sales / fixed assets",
];

/// `attr1` … `attr64`.
pub static POLISH: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (1..=64).map(|i| format!("attr{i}")).collect());

/// Why client-sent features were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    #[error("{field}: {value} is not a number (numbers, numeric strings, \"NM\", \"N/A\", \"\" or null)")]
    NotANumber { field: String, value: String },
    #[error("unknown ratio {field:?}; expected one of: {expected}")]
    Unknown { field: String, expected: String },
}

impl FeatureSet {
    pub fn names(self) -> Vec<&'static str> {
        match self {
            Self::AccunodeAnnual => ACCUNODE_ANNUAL.to_vec(),
            Self::AccunodeQuarterly => ACCUNODE_QUARTERLY.to_vec(),
            Self::Polish => POLISH.iter().map(String::as_str).collect(),
        }
    }

    pub fn len(self) -> usize {
        match self {
            Self::AccunodeAnnual => ACCUNODE_ANNUAL.len(),
            Self::AccunodeQuarterly => ACCUNODE_QUARTERLY.len(),
            Self::Polish => 64,
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The features computed from a statement.
    pub fn from_statement(self, s: &Statement) -> Vec<Option<f64>> {
        match self {
            Self::AccunodeAnnual => vec![
                long_term_debt_to_total_capital(s),
                total_debt_to_ebitda(s),
                pct(div_positive(s.net_profit, s.sales)),
                div_positive(s.ebit, s.interest_or_financial_expenses()),
                pct(div_positive(s.net_profit, s.total_assets)),
            ],
            Self::AccunodeQuarterly => vec![
                total_debt_to_ebitda(s),
                pct(div_positive(s.sga_expenses, s.sales)),
                long_term_debt_to_total_capital(s),
                pct(div_positive(s.ebit, total_capital(s))),
            ],
            Self::Polish => polish_attributes(s).to_vec(),
        }
    }

    /// Whether every ratio of `ratios` is one of this set's (names matched case-insensitively).
    pub fn reads(self, ratios: &Map<String, Value>) -> bool {
        let names = self.names();
        ratios.keys().all(|key| index_of(&names, key).is_some())
    }

    /// Client-sent ratios by name, in this set's order; names are matched case-insensitively.
    pub fn from_ratios(self, ratios: &Map<String, Value>) -> Result<Vec<Option<f64>>, FeatureError> {
        Ok(self.sent_ratios(ratios)?.into_iter().map(Option::flatten).collect())
    }

    /// Per feature: `None` when the client did not send it, `Some(value)` when it did (the value itself may
    /// be missing, e.g. "NM"). Names are matched case-insensitively; an unknown name is an error.
    fn sent_ratios(self, ratios: &Map<String, Value>) -> Result<Vec<Option<Option<f64>>>, FeatureError> {
        let names = self.names();
        let mut values = vec![None; names.len()];
        for (key, value) in ratios {
            let index = index_of(&names, key).ok_or_else(|| FeatureError::Unknown {
                field: key.clone(),
                expected: names.join(", "),
            })?;
            values[index] = Some(parse_value(key, value)?);
        }
        Ok(values)
    }

    /// The model's input from a statement and/or ratios: a ratio the client sent wins over the computed
    /// one; a ratio sent as missing ("NM", null) stays missing.
    pub fn assemble(
        self,
        statement: Option<&Statement>,
        ratios: Option<&Map<String, Value>>,
    ) -> Result<Vec<Option<f64>>, FeatureError> {
        let mut values = match statement {
            Some(s) => self.from_statement(s),
            None => vec![None; self.len()],
        };
        if let Some(ratios) = ratios {
            for (value, sent) in values.iter_mut().zip(self.sent_ratios(ratios)?) {
                if let Some(sent) = sent {
                    *value = sent;
                }
            }
        }
        Ok(values)
    }
}

/// The position of a client's ratio name among `names` (case-insensitive, surrounding spaces ignored).
fn index_of(names: &[&str], key: &str) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(key.trim()))
}

/// One client value under AccuNode's rules (see the module documentation).
pub fn parse_value(field: &str, value: &Value) -> Result<Option<f64>, FeatureError> {
    let not_a_number = || FeatureError::NotANumber {
        field: field.to_owned(),
        value: value.to_string(),
    };
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_f64().map(Some).ok_or_else(not_a_number),
        Value::String(s) => parse_text(s).ok_or_else(not_a_number),
        _ => Err(not_a_number()),
    }
}

/// A spreadsheet cell or JSON string: `Some(None)` for a missing marker, `Some(Some(x))` for a number,
/// `None` when it is neither.
pub fn parse_text(raw: &str) -> Option<Option<f64>> {
    let text = raw.trim();
    if text.is_empty() || ["nm", "n/a", "nan"].iter().any(|m| text.eq_ignore_ascii_case(m)) {
        return Some(None);
    }
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(Some(f64::INFINITY)),
        "-inf" | "-infinity" => return Some(Some(f64::NEG_INFINITY)),
        _ => {}
    }
    // Only plain decimal notation: Rust would also accept "inf"-like words handled above, nothing else.
    text.parse::<f64>().ok().filter(|v| !v.is_nan()).map(Some)
}

/// `n / d`, missing when either is missing, `d == 0`, or the result is not finite.
pub fn div(n: Option<f64>, d: Option<f64>) -> Option<f64> {
    let (n, d) = (n?, d?);
    if d == 0.0 {
        return None;
    }
    finite(n / d)
}

/// `n / d` where a non-positive denominator makes the ratio meaningless (sales, assets, interest, EBITDA,
/// capital): missing, as the data vendors report "NM".
pub fn div_positive(n: Option<f64>, d: Option<f64>) -> Option<f64> {
    if d? <= 0.0 {
        return None;
    }
    div(n, d)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    finite(a? + b?)
}

fn sub(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    finite(a? - b?)
}

fn scale(a: Option<f64>, k: f64) -> Option<f64> {
    finite(a? * k)
}

fn pct(x: Option<f64>) -> Option<f64> {
    scale(x, 100.0)
}

/// Total debt plus equity (total capital), or long-term debt plus equity when total debt is not reported.
fn total_capital(s: &Statement) -> Option<f64> {
    add(s.total_debt.or(s.long_term_debt), s.equity)
}

fn long_term_debt_to_total_capital(s: &Statement) -> Option<f64> {
    pct(div_positive(s.long_term_debt, total_capital(s)))
}

fn total_debt_to_ebitda(s: &Statement) -> Option<f64> {
    div_positive(s.total_debt, s.ebitda_or_derived())
}

/// Financial expenses of zero: no debt cost. `Attr27` (operating profit / financial expenses) is then this
/// large cover, whatever the operating profit (a loss does not have to cover debt costs that do not exist),
/// never "missing". (The data's missing `Attr27` is not
/// that: 38 % of those rows have an operating profit of exactly 0 too — incomplete statements, 6x more
/// frequent among bankrupt firms — so training reads it as unknown.)
pub const NO_DEBT_COST_COVERAGE: f64 = 1e7;

/// Where the data's columns depart from the UCI text, and how they are served: `(attribute, UCI text,
/// served definition, evidence in the data)`. `polish_attributes` follows the served definition; the test
/// `tests/polish_identities.rs` checks each identity against the data and against this code.
pub const POLISH_DEPARTURES: [(&str, &str, &str, &str); 7] = [
    (
        "all",
        "gross profit",
        "profit before tax",
        "Attr7 (EBIT / TA) = Attr14 ((gross profit + interest) / TA) = Attr18 (gross profit / TA) in 99.98 % of \
         rows of 5year and 100 % of 1year: the data's \"gross profit\" is the Polish zysk brutto, profit before tax",
    ),
    (
        "Attr7",
        "EBIT / total assets",
        "profit before tax / total assets",
        "Attr7 = Attr18 in 99.98 % / 100 % of rows",
    ),
    (
        "Attr14",
        "(gross profit + interest) / total assets",
        "profit before tax / total assets",
        "Attr14 = Attr18 in 99.98 % / 100 % of rows",
    ),
    (
        "Attr27",
        "profit on operating activities / financial expenses",
        "the same; zero financial expenses give 1e7 (no debt cost), not missing",
        "the UCI text leaves a zero denominator undefined; where the data's Attr27 is missing, 38 % of rows have \
         an operating profit of exactly 0 as well (incomplete statements): unknown, not a signal",
    ),
    (
        "Attr41",
        "total liabilities / ((profit on operating activities + depreciation) * (12/365))",
        "total liabilities / ((profit on operating activities + depreciation) * (365/12))",
        "Attr41 * (Attr22 + depreciation / TA) / Attr2 is 12/365 (or 1/30) in 99.7 % / 99.8 % of rows",
    ),
    (
        "Attr52",
        "(short-term liabilities * 365) / cost of products sold",
        "short-term liabilities / cost of products sold",
        "Attr52 = Attr51 * Attr47 / (365 * inventory / TA) in 99.4 % of rows; 365 * Attr52 = Attr32 in 94 %",
    ),
    (
        "Attr57",
        "(current assets - inventory - short-term liabilities) / (sales - gross profit - depreciation)",
        "net profit / equity",
        "Attr57 = Attr1 / Attr10 in 99.0 % / 99.4 % of rows; the UCI text holds in 0.25 %",
    ),
];

/// The 64 attributes of the Polish bankruptcy data as the data computes them: the UCI text
/// (`../shared/data/polish_bankruptcy/SOURCE.md`) except where [`POLISH_DEPARTURES`] says otherwise.
/// Additive items that companies often leave out (short-term securities, extraordinary items) count as 0
/// when absent; every other missing operand makes the attribute missing (unknown).
pub fn polish_attributes(s: &Statement) -> [Option<f64>; 64] {
    let zero_if_absent = |x: Option<f64>| Some(x.unwrap_or(0.0));
    let ta = s.total_assets;
    let tl = s.total_liabilities;
    let stl = s.current_liabilities;
    let sales = s.sales;
    let pbt = s.profit_before_tax_or_derived();
    let dep = s.depreciation;
    let poa = s.profit_on_operating_activities;
    // Financial expenses as reported, never the interest in their place: an absent item is unknown (the
    // optional items' bound, `train::boost`), not another value.
    let fe = s.financial_expenses;
    let interest = s.interest_or_financial_expenses();
    let working_capital = sub(s.current_assets, stl);
    let constant_capital = add(s.equity, s.long_term_liabilities);
    let quick_assets = sub(s.current_assets, s.inventories);
    let days = |x: Option<f64>| scale(x, 365.0);
    let receivable_days = div(days(s.receivables), sales);
    let inventory_days = div(days(s.inventories), sales);
    [
        div(s.net_profit, ta),
        div(tl, ta),
        div(working_capital, ta),
        div(s.current_assets, stl),
        scale(
            div(
                sub(
                    add(add(s.cash, zero_if_absent(s.short_term_securities)), s.receivables),
                    stl,
                ),
                sub(s.operating_expenses, dep),
            ),
            365.0,
        ),
        div(s.retained_earnings, ta),
        div(pbt, ta),
        div(s.equity, tl),
        div(sales, ta),
        div(s.equity, ta),
        div(add(add(pbt, zero_if_absent(s.extraordinary_items)), fe), ta),
        div(pbt, stl),
        div(add(pbt, dep), sales),
        div(pbt, ta),
        div(days(tl), add(pbt, dep)),
        div(add(pbt, dep), tl),
        div(ta, tl),
        div(pbt, ta),
        div(pbt, sales),
        inventory_days,
        div(sales, s.previous_sales),
        div(poa, ta),
        div(s.net_profit, sales),
        div(s.gross_profit_3y, ta),
        div(sub(s.equity, s.share_capital), ta),
        div(add(s.net_profit, dep), tl),
        coverage(poa, fe),
        div(working_capital, s.fixed_assets),
        ta.filter(|a| *a > 0.0).and_then(|a| finite(a.log10())),
        div(sub(tl, s.cash), sales),
        div(add(pbt, interest), sales),
        div(days(stl), s.cost_of_products_sold),
        div(s.operating_expenses, stl),
        div(s.operating_expenses, tl),
        div(s.profit_on_sales, ta),
        div(sales, ta),
        div(quick_assets, s.long_term_liabilities),
        div(constant_capital, ta),
        div(s.profit_on_sales, sales),
        div(sub(quick_assets, s.receivables), stl),
        div(tl, scale(add(poa, dep), 365.0 / 12.0)),
        div(poa, sales),
        add(receivable_days, inventory_days),
        receivable_days,
        div(s.net_profit, s.inventories),
        div(quick_assets, stl),
        div(days(s.inventories), s.cost_of_products_sold),
        div(sub(poa, dep), ta),
        div(sub(poa, dep), sales),
        div(s.current_assets, tl),
        div(stl, ta),
        div(stl, s.cost_of_products_sold),
        div(s.equity, s.fixed_assets),
        div(constant_capital, s.fixed_assets),
        working_capital,
        div(sub(sales, s.cost_of_products_sold), sales),
        div(s.net_profit, s.equity),
        div(s.total_costs, sales),
        div(s.long_term_liabilities, s.equity),
        div(sales, s.inventories),
        div(sales, s.receivables),
        div(days(stl), sales),
        div(sales, stl),
        div(sales, s.fixed_assets),
    ]
}

/// Operating profit / financial expenses; with no financial expenses, [`NO_DEBT_COST_COVERAGE`] (known
/// without the operating profit: there is nothing to cover).
fn coverage(profit: Option<f64>, expenses: Option<f64>) -> Option<f64> {
    let expenses = expenses?;
    if expenses == 0.0 {
        return Some(NO_DEBT_COST_COVERAGE);
    }
    div(profit, Some(expenses))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn company() -> Statement {
        Statement {
            total_assets: Some(1000.0),
            current_assets: Some(400.0),
            cash: Some(50.0),
            receivables: Some(150.0),
            inventories: Some(100.0),
            fixed_assets: Some(600.0),
            total_liabilities: Some(600.0),
            current_liabilities: Some(250.0),
            long_term_liabilities: Some(350.0),
            long_term_debt: Some(300.0),
            total_debt: Some(400.0),
            equity: Some(400.0),
            share_capital: Some(100.0),
            retained_earnings: Some(200.0),
            sales: Some(2000.0),
            previous_sales: Some(1600.0),
            cost_of_products_sold: Some(1500.0),
            gross_profit: Some(500.0),
            sga_expenses: Some(300.0),
            operating_expenses: Some(1800.0),
            depreciation: Some(50.0),
            ebit: Some(150.0),
            interest_expense: Some(30.0),
            net_profit: Some(90.0),
            ..Default::default()
        }
    }

    #[test]
    fn accunode_annual_ratios_follow_their_definitions() {
        let f = FeatureSet::AccunodeAnnual.from_statement(&company());
        assert_eq!(f[0], Some(300.0 / 800.0 * 100.0)); // LTD / (total debt + equity), %
        assert_eq!(f[1], Some(400.0 / 200.0)); // total debt / (EBIT + D&A)
        assert_eq!(f[2], Some(90.0 / 2000.0 * 100.0));
        assert_eq!(f[3], Some(150.0 / 30.0));
        assert_eq!(f[4], Some(90.0 / 1000.0 * 100.0));
    }

    #[test]
    fn meaningless_denominators_are_missing() {
        let s = Statement {
            ebitda: Some(-5.0),
            total_debt: Some(10.0),
            sales: Some(0.0),
            net_profit: Some(3.0),
            interest_expense: Some(0.0),
            ebit: Some(1.0),
            ..Default::default()
        };
        let f = FeatureSet::AccunodeAnnual.from_statement(&s);
        assert_eq!(f, vec![None, None, None, None, None]);
    }

    #[test]
    fn polish_attributes_match_hand_computed_values() {
        let a = polish_attributes(&company());
        assert_eq!(a[0], Some(0.09)); // Attr1 net profit / total assets
        assert_eq!(a[2], Some(0.15)); // Attr3 working capital / total assets
        assert_eq!(a[20], Some(1.25)); // Attr21 sales growth
        assert_eq!(a[28], Some(3.0)); // Attr29 log10(total assets)
        assert_eq!(a[42], Some(150.0 * 365.0 / 2000.0 + 100.0 * 365.0 / 2000.0)); // Attr43
        assert_eq!(a[54], Some(150.0)); // Attr55 working capital
        assert_eq!(a[23], None); // Attr24 needs three-year gross profit
    }

    #[test]
    fn client_values_follow_accunode_rules() {
        for missing in [json!(null), json!(""), json!(" NM "), json!("n/a"), json!("NaN")] {
            assert_eq!(parse_value("x", &missing).unwrap(), None, "{missing}");
        }
        assert_eq!(parse_value("x", &json!(12.5)).unwrap(), Some(12.5));
        assert_eq!(parse_value("x", &json!("12.5")).unwrap(), Some(12.5));
        assert_eq!(parse_value("x", &json!("-inf")).unwrap(), Some(f64::NEG_INFINITY));
        let err = parse_value("sga_margin", &json!("lots")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sga_margin: \"lots\" is not a number (numbers, numeric strings, \"NM\", \"N/A\", \"\" or null)"
        );
        assert!(parse_value("x", &json!(true)).is_err());
        assert!(parse_value("x", &json!([1])).is_err());
    }

    #[test]
    fn client_ratios_override_computed_ones_and_unknown_names_are_refused() {
        let ratios = json!({"Return_On_Assets": 7.5, "net_income_margin": "NM"});
        let f = FeatureSet::AccunodeAnnual
            .assemble(Some(&company()), Some(ratios.as_object().unwrap()))
            .unwrap();
        assert_eq!(f[4], Some(7.5));
        assert_eq!(f[2], None);
        assert_eq!(f[3], Some(5.0));
        let bad = json!({"roa": 1});
        let err = FeatureSet::AccunodeAnnual
            .from_ratios(bad.as_object().unwrap())
            .unwrap_err();
        assert!(matches!(err, FeatureError::Unknown { .. }));
    }

    fn amount() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            Just(Some(0.0)),
            Just(Some(-0.0)),
            (-1e15f64..1e15).prop_map(Some),
            (-1e-300f64..1e-300).prop_map(Some),
            any::<f64>().prop_map(Some),
        ]
    }

    fn statement() -> impl Strategy<Value = Statement> {
        proptest::collection::vec(amount(), Statement::FIELDS.len()).prop_map(|values| {
            let mut json = Map::new();
            for (name, value) in Statement::FIELDS.iter().zip(values) {
                if let Some(v) = value.filter(|v| v.is_finite()) {
                    json.insert((*name).to_owned(), json!(v));
                }
            }
            serde_json::from_value(Value::Object(json)).unwrap()
        })
    }

    proptest! {
        #[test]
        fn every_feature_is_finite_or_missing(s in statement()) {
            for set in [FeatureSet::AccunodeAnnual, FeatureSet::AccunodeQuarterly, FeatureSet::Polish] {
                let features = set.from_statement(&s);
                prop_assert_eq!(features.len(), set.len());
                for value in features.into_iter().flatten() {
                    prop_assert!(value.is_finite());
                }
            }
        }

        #[test]
        fn any_text_parses_or_is_refused_without_panicking(text in ".{0,20}") {
            if let Some(Some(v)) = parse_text(&text) {
                prop_assert!(!v.is_nan());
            }
        }
    }
}
