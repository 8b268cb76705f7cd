//! A back-test: a model's PDs at a horizon scored against the credit events that followed them.
//!
//! An **observation** is a company's prediction by the model for one reporting period, anchored at the
//! statement's period end (the date its figures describe: a statement scored later, or replayed with another
//! model, is judged as of its period, which is what a model-change review needs). It **defaulted** when the
//! company's first credit event after the period end falls within the horizon. It is left out when the
//! company had an event on or before the period end (it was in default already), when the horizon has not
//! yet run its course (the outcome is not known: counted as `incomplete`, never guessed), or when the model
//! gave no PD at that horizon.

use chrono::{Months, NaiveDate};
use pdscore_models::{
    metrics::{self, ReliabilityBin},
    risk::{MASTER_SCALE, implied_rating},
};
use serde::Serialize;
use uuid::Uuid;

/// A company's prediction for one period, with what followed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub company_id: Uuid,
    /// The statement's period end.
    pub as_of: NaiveDate,
    /// `2023`, or `2023-Q2` for a quarterly statement.
    pub period: String,
    /// The one-year PD (the grade is drawn from it).
    pub probability: f64,
    /// The PD at the back-test's horizon (`None`: the model gives none).
    pub pd: Option<f64>,
    /// The implied rating stored with the prediction.
    pub rating: Option<String>,
    /// The company's first credit event after `as_of`.
    pub next_event: Option<NaiveDate>,
    /// The company had a credit event on or before `as_of`.
    pub defaulted_before: bool,
}

impl Observation {
    fn grade(&self) -> &'static str {
        self.rating
            .as_deref()
            .and_then(|r| MASTER_SCALE.iter().find(|g| g.grade == r))
            .map_or_else(|| implied_rating(self.probability), |g| g.grade)
    }

    fn horizon_end(&self, horizon_years: u8) -> Option<NaiveDate> {
        self.as_of
            .checked_add_months(Months::new(12 * u32::from(horizon_years)))
    }

    fn defaulted_within(&self, horizon_years: u8) -> bool {
        matches!((self.next_event, self.horizon_end(horizon_years)), (Some(event), Some(end)) if event <= end)
    }
}

/// Observations left out, by reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Excluded {
    /// The horizon ends after today: the outcome is not known yet.
    pub incomplete: u64,
    /// The company was in default already at the period end.
    pub defaulted_before: u64,
    /// The model gives no PD at this horizon (no term structure).
    pub without_pd: u64,
}

/// A rating grade's PD against its realised default rate.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GradeTest {
    pub grade: &'static str,
    pub obligors: u64,
    pub defaults: u64,
    /// The grade's mean PD at the horizon.
    pub mean_pd: f64,
    pub default_rate: f64,
    /// Jeffreys test: small when the realised default rate is well above the PD (ECB validation reporting).
    pub jeffreys_p_value: Option<f64>,
    /// One-sided binomial test: the probability of at least this many defaults if the PD were right.
    pub binomial_p_value: Option<f64>,
}

/// A reliability bin (predictions of similar PD: mean PD against their default rate).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub observations: u64,
    pub mean_pd: f64,
    pub default_rate: f64,
}

impl From<ReliabilityBin> for CalibrationBin {
    fn from(bin: ReliabilityBin) -> Self {
        Self {
            lower: bin.lower,
            upper: bin.upper,
            observations: bin.count as u64,
            mean_pd: bin.mean_predicted,
            default_rate: bin.observed_rate,
        }
    }
}

/// Rating migrations between a company's consecutive observations (`from` grade in rows, `to` in columns; the
/// last column, `D`, counts observations followed by a credit event before the company's next one, or within
/// the horizon when there is no next one).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Migrations {
    /// Row labels: the master scale's grades, best first.
    pub from: Vec<&'static str>,
    /// Column labels: the grades, then `D`.
    pub to: Vec<&'static str>,
    pub counts: Vec<Vec<u64>>,
}

/// The PD distribution of one reporting period (every observation of the window, complete or not).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PeriodDistribution {
    pub period: String,
    pub observations: u64,
    pub mean_pd: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    /// Among the period's observations whose horizon is complete.
    pub complete: u64,
    pub defaults: u64,
}

/// What a back-test measures. Discrimination figures are `null` when the window holds no default or no
/// survivor (they are undefined then).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Measures {
    pub observations: u64,
    pub defaults: u64,
    pub default_rate: Option<f64>,
    pub mean_pd: Option<f64>,
    /// ROC-AUC: the chance a defaulter had the higher PD than a survivor.
    pub roc_auc: Option<f64>,
    /// Accuracy ratio (Gini): 2·AUC − 1.
    pub accuracy_ratio: Option<f64>,
    /// Mean squared error of the PDs.
    pub brier: Option<f64>,
    /// Kolmogorov–Smirnov: the widest gap between the PD distributions of defaulters and survivors.
    pub ks: Option<f64>,
    /// (false-positive rate, true-positive rate), thinned to at most 201 points.
    pub roc_curve: Vec<[f64; 2]>,
    /// Reliability by decile of PD.
    pub calibration: Vec<CalibrationBin>,
    /// Per rating grade with observations, best first.
    pub grades: Vec<GradeTest>,
}

/// The measures of one horizon over a set of observations, with its migrations and PD distribution over time.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Evaluation {
    pub measures: Measures,
    pub excluded: Excluded,
    pub migrations: Migrations,
    pub by_period: Vec<PeriodDistribution>,
}

/// The most ROC points answered.
const ROC_POINTS: usize = 201;

/// Evaluates `observations` (ordered by company, then period end) at `horizon_years`, as of `today`.
pub fn evaluate(observations: &[Observation], horizon_years: u8, today: NaiveDate) -> Evaluation {
    let mut excluded = Excluded::default();
    let mut included: Vec<(&Observation, f64, u8)> = Vec::new();
    for observation in observations {
        let complete = observation.horizon_end(horizon_years).is_some_and(|end| end <= today);
        match observation.pd {
            _ if observation.defaulted_before => excluded.defaulted_before += 1,
            _ if !complete => excluded.incomplete += 1,
            None => excluded.without_pd += 1,
            Some(pd) => included.push((observation, pd, u8::from(observation.defaulted_within(horizon_years)))),
        }
    }
    let pds: Vec<f64> = included.iter().map(|(_, pd, _)| *pd).collect();
    let labels: Vec<u8> = included.iter().map(|(_, _, label)| *label).collect();
    Evaluation {
        measures: measures(&included, &pds, &labels),
        excluded,
        migrations: migrations(observations, horizon_years),
        by_period: by_period(observations, horizon_years, today),
    }
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> Option<f64> {
    let n = values.len();
    (n > 0).then(|| values.sum::<f64>() / n as f64)
}

fn measures(included: &[(&Observation, f64, u8)], pds: &[f64], labels: &[u8]) -> Measures {
    let defaults = labels.iter().filter(|l| **l == 1).count() as u64;
    let roc_auc = metrics::roc_auc(pds, labels);
    let grades = MASTER_SCALE
        .iter()
        .filter_map(|grade| {
            let members: Vec<(f64, u8)> = included
                .iter()
                .filter(|(o, _, _)| o.grade() == grade.grade)
                .map(|(_, pd, label)| (*pd, *label))
                .collect();
            let obligors = members.len() as u64;
            let defaults = members.iter().filter(|(_, l)| *l == 1).count() as u64;
            let mean_pd = mean(members.iter().map(|(pd, _)| *pd))?;
            Some(GradeTest {
                grade: grade.grade,
                obligors,
                defaults,
                mean_pd,
                default_rate: defaults as f64 / obligors as f64,
                jeffreys_p_value: metrics::jeffreys_p_value(defaults, obligors, mean_pd),
                binomial_p_value: metrics::binomial_p_value(defaults, obligors, mean_pd),
            })
        })
        .collect();
    Measures {
        observations: pds.len() as u64,
        defaults,
        default_rate: mean(labels.iter().map(|l| f64::from(*l))),
        mean_pd: mean(pds.iter().copied()),
        roc_auc,
        accuracy_ratio: roc_auc.map(|auc| 2.0 * auc - 1.0),
        brier: (!pds.is_empty()).then(|| metrics::brier(pds, labels)),
        ks: metrics::ks(pds, labels),
        roc_curve: metrics::roc_curve(pds, labels).map(thin).unwrap_or_default(),
        calibration: metrics::reliability_deciles(pds, labels)
            .into_iter()
            .map(CalibrationBin::from)
            .collect(),
        grades,
    }
}

/// At most [`ROC_POINTS`] of a curve, evenly spread, keeping both ends.
fn thin(points: Vec<(f64, f64)>) -> Vec<[f64; 2]> {
    let n = points.len();
    if n <= ROC_POINTS {
        return points.into_iter().map(|(x, y)| [x, y]).collect();
    }
    (0..ROC_POINTS)
        .map(|i| {
            let (x, y) = points[i * (n - 1) / (ROC_POINTS - 1)];
            [x, y]
        })
        .collect()
}

fn migrations(observations: &[Observation], horizon_years: u8) -> Migrations {
    let grades: Vec<&'static str> = MASTER_SCALE.iter().map(|g| g.grade).collect();
    let index = |grade: &str| grades.iter().position(|g| *g == grade).expect("a master-scale grade");
    let mut counts = vec![vec![0u64; grades.len() + 1]; grades.len()];
    for (i, observation) in observations.iter().enumerate() {
        if observation.defaulted_before {
            continue;
        }
        let next = observations
            .get(i + 1)
            .filter(|n| n.company_id == observation.company_id);
        let column = match (next, observation.next_event) {
            (Some(next), Some(event)) if event <= next.as_of => Some(grades.len()),
            (Some(next), _) => Some(index(next.grade())),
            (None, _) if observation.defaulted_within(horizon_years) => Some(grades.len()),
            (None, _) => None,
        };
        if let Some(column) = column {
            counts[index(observation.grade())][column] += 1;
        }
    }
    let mut to = grades.clone();
    to.push("D");
    Migrations {
        from: grades,
        to,
        counts,
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn by_period(observations: &[Observation], horizon_years: u8, today: NaiveDate) -> Vec<PeriodDistribution> {
    let mut periods: std::collections::BTreeMap<&str, Vec<&Observation>> = Default::default();
    for observation in observations.iter().filter(|o| o.pd.is_some()) {
        periods
            .entry(observation.period.as_str())
            .or_default()
            .push(observation);
    }
    periods
        .into_iter()
        .map(|(period, members)| {
            let mut pds: Vec<f64> = members.iter().filter_map(|o| o.pd).collect();
            pds.sort_by(f64::total_cmp);
            let complete: Vec<&&Observation> = members
                .iter()
                .filter(|o| !o.defaulted_before && o.horizon_end(horizon_years).is_some_and(|end| end <= today))
                .collect();
            PeriodDistribution {
                period: period.to_owned(),
                observations: pds.len() as u64,
                mean_pd: pds.iter().sum::<f64>() / pds.len() as f64,
                p10: quantile(&pds, 0.1),
                p50: quantile(&pds, 0.5),
                p90: quantile(&pds, 0.9),
                complete: complete.len() as u64,
                defaults: complete.iter().filter(|o| o.defaulted_within(horizon_years)).count() as u64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn observation(company: u128, year: i32, pd: f64, event: Option<&str>) -> Observation {
        Observation {
            company_id: Uuid::from_u128(company),
            as_of: NaiveDate::from_ymd_opt(year, 12, 31).unwrap(),
            period: year.to_string(),
            probability: pd,
            pd: Some(pd),
            rating: None,
            next_event: event.map(date),
            defaulted_before: false,
        }
    }

    #[test]
    fn an_event_within_the_horizon_is_a_default_and_an_open_horizon_is_left_out() {
        let today = date("2025-06-30");
        let observations = [
            observation(1, 2022, 0.02, Some("2023-06-30")), // within a year: default
            observation(2, 2022, 0.01, Some("2024-06-30")), // after a year: survivor at 1y, default at 5y
            observation(3, 2022, 0.005, None),
            observation(4, 2024, 0.03, None), // 2024-12-31 + 1y is after today
        ];
        let one = evaluate(&observations, 1, today);
        assert_eq!(one.measures.observations, 3);
        assert_eq!(one.measures.defaults, 1);
        assert_eq!(one.excluded.incomplete, 1);
        assert_eq!(one.measures.roc_auc, Some(1.0));
        let five = evaluate(&observations, 5, today);
        // 2022-12-31 + 5y is after today: nothing is complete at five years.
        assert_eq!(five.measures.observations, 0);
        assert_eq!(five.excluded.incomplete, 4);
        assert_eq!(five.measures.roc_auc, None);
        assert!(five.measures.calibration.is_empty());
    }

    #[test]
    fn a_company_in_default_at_its_period_end_is_not_an_observation() {
        let mut before = observation(1, 2022, 0.5, None);
        before.defaulted_before = true;
        let evaluation = evaluate(&[before], 1, date("2026-01-01"));
        assert_eq!(evaluation.measures.observations, 0);
        assert_eq!(evaluation.excluded.defaulted_before, 1);
    }

    #[test]
    fn migrations_follow_a_company_from_period_to_period_and_into_default() {
        // BBB (0.2 %) → B (5 %) → an event before the next period: D.
        let observations = [
            observation(1, 2021, 0.002, Some("2023-03-01")),
            observation(1, 2022, 0.05, Some("2023-03-01")),
            observation(2, 2021, 0.05, None),
        ];
        let m = migrations(&observations, 1);
        let at = |from: &str, to: &str| {
            m.counts[m.from.iter().position(|g| *g == from).unwrap()][m.to.iter().position(|g| *g == to).unwrap()]
        };
        assert_eq!(at("BBB", "B"), 1);
        assert_eq!(at("B", "D"), 1);
        // Company 2 has no next period and no event: no migration is known.
        assert_eq!(m.counts.iter().flatten().sum::<u64>(), 2);
    }

    #[test]
    fn grades_carry_their_tests_and_periods_their_distribution() {
        let observations: Vec<Observation> = (0..10)
            .map(|i| observation(i, 2020, 0.05, (i < 3).then_some("2021-01-10")))
            .collect();
        let evaluation = evaluate(&observations, 1, date("2026-01-01"));
        let [grade] = evaluation.measures.grades.as_slice() else {
            panic!("{:?}", evaluation.measures.grades)
        };
        assert_eq!((grade.grade, grade.obligors, grade.defaults), ("B", 10, 3));
        // 3 defaults of 10 at a 5 % PD: the PD is too low.
        assert!(grade.binomial_p_value.unwrap() < 0.02, "{grade:?}");
        let [period] = evaluation.by_period.as_slice() else {
            panic!()
        };
        assert_eq!((period.observations, period.defaults, period.p50), (10, 3, 0.05));
    }

    #[test]
    fn a_long_roc_curve_is_thinned_keeping_its_ends() {
        let points: Vec<(f64, f64)> = (0..=1000)
            .map(|i| (f64::from(i) / 1000.0, f64::from(i) / 1000.0))
            .collect();
        let thinned = thin(points);
        assert_eq!(thinned.len(), ROC_POINTS);
        assert_eq!(thinned[0], [0.0, 0.0]);
        assert_eq!(thinned[ROC_POINTS - 1], [1.0, 1.0]);
    }
}
