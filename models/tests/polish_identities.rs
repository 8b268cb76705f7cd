//! Served = trained: the Polish attributes computed from a statement obey every identity the data's own
//! columns obey, and reproduce the data's columns from the data's line items.
//!
//! Each identity below is first checked against both data files (it must hold in at least the share of rows
//! it states: the identities are facts about the data, not assumptions), then against `polish_attributes`
//! on the statement behind every data row (it must hold exactly: the feature code follows the data).

use pdscore_models::{
    dataset::{Dataset, polish_statement},
    features::{NO_DEBT_COST_COVERAGE, polish_attributes},
};

type Row = [Option<f64>];

/// Attribute `i` (1-based, as in the data's documentation).
fn x(row: &Row, i: usize) -> Option<f64> {
    row[i - 1]
}

/// Depreciation / total assets: `Attr16 * Attr2 - Attr18`.
fn dep(r: &Row) -> Option<f64> {
    Some(x(r, 16)? * x(r, 2)? - x(r, 18)?)
}

/// The sales / total assets the ratios use: `Attr63 * Attr51`.
fn sales(r: &Row) -> Option<f64> {
    Some(x(r, 63)? * x(r, 51)?)
}

struct Identity {
    name: &'static str,
    /// Share of the data's rows (where both sides are defined) in which it holds, at least.
    in_data: f64,
    /// Relative tolerance.
    tolerance: f64,
    sides: fn(&Row) -> Option<(f64, f64)>,
}

macro_rules! identity {
    ($name:literal, $in_data:literal, $tolerance:literal, |$r:ident| $lhs:expr, $rhs:expr) => {
        Identity {
            name: $name,
            in_data: $in_data,
            tolerance: $tolerance,
            sides: |$r: &Row| Some(($lhs, $rhs)),
        }
    };
}

fn identities() -> Vec<Identity> {
    vec![
        identity!("Attr8 = Attr10 / Attr2", 0.99, 5e-3, |r| x(r, 8)?, x(r, 10)? / x(r, 2)?),
        identity!("Attr17 = 1 / Attr2", 0.99, 5e-3, |r| x(r, 17)?, 1.0 / x(r, 2)?),
        identity!(
            "Attr3 = Attr4 * Attr51 - Attr51",
            0.99,
            5e-3,
            |r| x(r, 3)?,
            x(r, 4)? * x(r, 51)? - x(r, 51)?
        ),
        identity!(
            "Attr50 = Attr4 * Attr51 / Attr2",
            0.99,
            5e-3,
            |r| x(r, 50)?,
            x(r, 4)? * x(r, 51)? / x(r, 2)?
        ),
        identity!("Attr62 = 365 / Attr63", 0.99, 5e-3, |r| x(r, 62)?, 365.0 / x(r, 63)?),
        identity!(
            "Attr12 = Attr18 / Attr51",
            0.99,
            5e-3,
            |r| x(r, 12)?,
            x(r, 18)? / x(r, 51)?
        ),
        identity!("Attr15 = 365 / Attr16", 0.99, 5e-3, |r| x(r, 15)?, 365.0 / x(r, 16)?),
        identity!(
            "Attr26 * Attr2 - Attr1 = Attr16 * Attr2 - Attr18 (depreciation)",
            0.99,
            5e-3,
            |r| x(r, 26)? * x(r, 2)? - x(r, 1)?,
            dep(r)?
        ),
        identity!(
            "Attr7 = Attr18 (EBIT is profit before tax)",
            0.99,
            5e-3,
            |r| x(r, 7)?,
            x(r, 18)?
        ),
        identity!(
            "Attr14 = Attr18 (no interest added)",
            0.99,
            5e-3,
            |r| x(r, 14)?,
            x(r, 18)?
        ),
        identity!("Attr20 = 365 / Attr60", 0.99, 5e-3, |r| x(r, 20)?, 365.0 / x(r, 60)?),
        identity!("Attr44 = 365 / Attr61", 0.99, 5e-3, |r| x(r, 44)?, 365.0 / x(r, 61)?),
        identity!(
            "Attr43 = Attr20 + Attr44",
            0.99,
            5e-3,
            |r| x(r, 43)?,
            x(r, 20)? + x(r, 44)?
        ),
        identity!(
            "Attr48 = Attr22 - depreciation",
            0.99,
            5e-3,
            |r| x(r, 48)?,
            x(r, 22)? - dep(r)?
        ),
        identity!(
            "Attr1 / Attr23 = sales",
            0.99,
            5e-3,
            |r| x(r, 1)? / x(r, 23)?,
            sales(r)?
        ),
        identity!(
            "Attr18 / Attr19 = sales",
            0.99,
            5e-3,
            |r| x(r, 18)? / x(r, 19)?,
            sales(r)?
        ),
        identity!(
            "Attr22 / Attr42 = sales",
            0.99,
            5e-3,
            |r| x(r, 22)? / x(r, 42)?,
            sales(r)?
        ),
        identity!(
            "Attr35 / Attr39 = sales",
            0.99,
            5e-3,
            |r| x(r, 35)? / x(r, 39)?,
            sales(r)?
        ),
        identity!(
            "Attr13 = (Attr18 + depreciation) / sales",
            0.99,
            5e-3,
            |r| x(r, 13)?,
            (x(r, 18)? + dep(r)?) / sales(r)?
        ),
        identity!(
            "Attr49 = Attr48 / sales",
            0.99,
            5e-3,
            |r| x(r, 49)?,
            x(r, 48)? / sales(r)?
        ),
        identity!(
            "Attr64 = sales * Attr53 / Attr10",
            0.99,
            5e-3,
            |r| x(r, 64)?,
            sales(r)? * x(r, 53)? / x(r, 10)?
        ),
        identity!(
            "Attr45 = Attr1 * Attr60 / sales",
            0.99,
            5e-3,
            |r| x(r, 45)?,
            x(r, 1)? * x(r, 60)? / sales(r)?
        ),
        identity!(
            "Attr46 = Attr4 - inventory / Attr51",
            0.95,
            5e-3,
            |r| x(r, 46)?,
            x(r, 4)? - sales(r)? / x(r, 60)? / x(r, 51)?
        ),
        identity!(
            "Attr40 = Attr46 - receivables / Attr51",
            0.94,
            5e-3,
            |r| x(r, 40)?,
            x(r, 46)? - sales(r)? / x(r, 61)? / x(r, 51)?
        ),
        identity!(
            "Attr37 = Attr46 * Attr51 / (Attr38 - Attr10)",
            0.94,
            5e-3,
            |r| x(r, 37)?,
            x(r, 46)? * x(r, 51)? / (x(r, 38)? - x(r, 10)?)
        ),
        identity!(
            "Attr59 = (Attr38 - Attr10) / Attr10",
            0.99,
            5e-3,
            |r| x(r, 59)?,
            (x(r, 38)? - x(r, 10)?) / x(r, 10)?
        ),
        identity!(
            "Attr54 = Attr38 * Attr53 / Attr10",
            0.99,
            5e-3,
            |r| x(r, 54)?,
            x(r, 38)? * x(r, 53)? / x(r, 10)?
        ),
        identity!(
            "Attr28 = Attr3 * Attr53 / Attr10",
            0.99,
            5e-3,
            |r| x(r, 28)?,
            x(r, 3)? * x(r, 53)? / x(r, 10)?
        ),
        identity!(
            "Attr52 = Attr51 / cost of products sold (no x365)",
            0.99,
            5e-3,
            |r| x(r, 52)?,
            x(r, 51)? * x(r, 47)? * x(r, 60)? / (365.0 * sales(r)?)
        ),
        identity!("Attr32 = 365 * Attr52", 0.92, 5e-3, |r| x(r, 32)?, 365.0 * x(r, 52)?),
        identity!(
            "Attr57 = Attr1 / Attr10 (net profit / equity)",
            0.98,
            5e-3,
            |r| x(r, 57)?,
            x(r, 1)? / x(r, 10)?
        ),
        identity!(
            "Attr41 = Attr2 * 12 / (365 * (Attr22 + depreciation))",
            0.99,
            2e-2,
            |r| x(r, 41)?,
            x(r, 2)? * 12.0 / (365.0 * (x(r, 22)? + dep(r)?))
        ),
        identity!(
            "Attr55 = Attr3 * 10^Attr29",
            0.95,
            5e-3,
            |r| x(r, 55)?,
            x(r, 3)? * 10f64.powf(x(r, 29)?)
        ),
    ]
}

fn holds(identity: &Identity, row: &Row) -> Option<bool> {
    let (lhs, rhs) = (identity.sides)(row)?;
    if !(lhs.is_finite() && rhs.is_finite()) {
        return None;
    }
    let scale = lhs.abs().max(rhs.abs()).max(1e-3);
    Some((lhs - rhs).abs() / scale < identity.tolerance)
}

fn data() -> Vec<(&'static str, Dataset)> {
    let dir = pdscore_models::train_data_dir();
    ["5year.arff", "1year.arff"]
        .into_iter()
        .map(|file| {
            (
                file,
                Dataset::load(&dir.join(file)).expect("the shared Polish data set"),
            )
        })
        .collect()
}

#[test]
fn every_identity_holds_in_the_data_and_in_the_served_features() {
    let data = data();
    for identity in identities() {
        for (file, dataset) in &data {
            let checked: Vec<bool> = dataset.rows.iter().filter_map(|r| holds(&identity, r)).collect();
            let share = checked.iter().filter(|h| **h).count() as f64 / checked.len() as f64;
            assert!(
                checked.len() > 3000 && share >= identity.in_data,
                "{file}: {} holds in {:.2} % of {} rows, documented ≥ {:.0} %",
                identity.name,
                share * 100.0,
                checked.len(),
                identity.in_data * 100.0
            );
            let mut served = 0;
            for (i, row) in dataset.rows.iter().enumerate() {
                let attributes = polish_attributes(&polish_statement(row));
                let served_identity = Identity {
                    tolerance: identity.tolerance.min(1e-6),
                    ..identity
                };
                if let Some(ok) = holds(&served_identity, &attributes) {
                    served += 1;
                    assert!(
                        ok,
                        "{file} row {i}: the served features break {}: {:?}",
                        identity.name,
                        (identity.sides)(&attributes)
                    );
                }
            }
            assert!(
                served > 2000,
                "{file}: {} checked on {served} served rows only",
                identity.name
            );
        }
    }
}

/// The attributes the served features must reproduce from the data's line items: all but eight. Attr9
/// and Attr36 use another "sales" than the other ratios in ~40 % of rows; Attr31 adds an interest no other
/// column shows; Attr32 and Attr56 compute the cost of products sold differently from Attr47/Attr52 in
/// 6-11 % of rows; Attr5, Attr30 and Attr34 need cash or liabilities no column isolates. At least 95 % of
/// the rows where the data has the attribute must agree to 0.5 %.
const REPRODUCED: [usize; 56] = [
    1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 33, 35, 37,
    38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 57, 58, 59, 60, 61, 62, 63, 64,
];

#[test]
fn served_features_reproduce_the_data_from_its_line_items() {
    for (file, dataset) in data() {
        let mut agree = [0usize; 64];
        let mut defined = [0usize; 64];
        for row in &dataset.rows {
            let served = polish_attributes(&polish_statement(row));
            for j in 0..64 {
                if let (Some(d), Some(s)) = (row[j], served[j]) {
                    defined[j] += 1;
                    let scale = d.abs().max(s.abs()).max(1e-3);
                    // Attr41: the data uses 1/30 for 12/365 in a few rows (1.4 % apart).
                    let tolerance = if j == 40 { 2e-2 } else { 5e-3 };
                    if (d - s).abs() / scale < tolerance {
                        agree[j] += 1;
                    }
                }
            }
        }
        let shares: Vec<(usize, f64, usize)> = (1..=64)
            .map(|attr| {
                (
                    attr,
                    agree[attr - 1] as f64 / defined[attr - 1].max(1) as f64,
                    defined[attr - 1],
                )
            })
            .collect();
        let short: Vec<String> = shares
            .iter()
            .filter(|(attr, share, n)| REPRODUCED.contains(attr) && (*share < 0.95 || *n < 3000))
            .map(|(attr, share, n)| format!("Attr{attr}: {:.2} % of {n}", share * 100.0))
            .collect();
        let all: Vec<String> = shares
            .iter()
            .map(|(attr, share, _)| format!("Attr{attr} {:.1}", share * 100.0))
            .collect();
        assert!(short.is_empty(), "{file}: {short:?}; all: {all:?}");
    }
}

#[test]
fn no_financial_expenses_is_a_large_cover_and_the_datas_missing_cover_is_unknown() {
    for (file, dataset) in data() {
        // The data's missing Attr27 comes with an operating profit of exactly 0 in over a third of its rows:
        // incomplete statements, not firms without debt. Served from such a row, the cover is unknown.
        let missing: Vec<&Vec<Option<f64>>> = dataset.rows.iter().filter(|r| r[26].is_none()).collect();
        let zero_profit = missing.iter().filter(|r| r[21] == Some(0.0)).count();
        assert!(
            missing.len() > 300 && zero_profit * 3 > missing.len(),
            "{file}: {zero_profit} of {}",
            missing.len()
        );
        for row in missing {
            assert_eq!(polish_attributes(&polish_statement(row))[26], None, "{file}");
        }
    }
    // A statement that says it has no financial expenses has no debt cost: the largest cover, whatever
    // its operating profit (known or not).
    for profit in [Some(50.0), Some(-5.0), Some(0.0), None] {
        let cover = Some(NO_DEBT_COST_COVERAGE);
        let statement = pdscore_models::statement::Statement {
            profit_on_operating_activities: profit,
            financial_expenses: Some(0.0),
            ..Default::default()
        };
        assert_eq!(polish_attributes(&statement)[26], cover, "operating profit {profit:?}");
    }
}
