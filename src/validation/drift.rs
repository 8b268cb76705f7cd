//! Drift: the population stability (PSI, [`pdscore_models::drift`]) of each answering model's inputs and PDs
//! on a tenant's own predictions, against the model's training sample and against the window before.
//!
//! ```text
//! predictions ─► hourly bin counts (drift_counts) ─► PSI per series and reference (drift_snapshots)
//!                                                       ├─► Prometheus gauges
//!                                                       └─► drift alert (drift_alerts ─► ALERTS stream ─► NATS, SSE)
//! ```
//!
//! The [`DriftMonitor`] runs a pass every `drift.every_secs` on every instance; each tenant is done by one
//! instance at a time (a transaction-scoped advisory lock) and skipped by the others for half an interval after
//! it (`drift_progress.passed_at`), so N instances share the work. A pass recounts the
//! tenant's predictions from the previous hour on (commits that landed late in it are counted), the first
//! pass the whole two windows; older hours are final. The measured window is the last `drift.window_hours`
//! (this hour included), the past window the same length before it. A PD stored for a tenant with a base
//! rate is shifted from the model's sample rate, so the PD's bin edges are shifted the same way (the shift
//! is increasing: the same predictions fall in the same bins).
//!
//! A drift alert is raised when some series of a model passes the threshold against a reference while no
//! alert of that model and reference is open; it is resolved when every series is back under it. It goes
//! out on the alert channels: NATS `alerts.<tenant>.drift`, and `event: drift` on the SSE stream of the
//! accounts that see the whole tenant.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures_util::TryStreamExt;
use pdscore_models::{
    drift::{PD_SERIES, Profile, psi, shares},
    registry::{LoadedModel, ModelId, Registry},
};
use pdscore_nats::alerts::{DriftAlert, DriftedSeries};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, types::Json};
use tokio_util::sync::CancellationToken;

use crate::{
    configuration::DriftSettings,
    db::drift::{self as stored, HourCounts, MonitoredTenant, SnapshotRow},
    messaging::Messaging,
    telemetry::events::{DriftAlertRaised, DriftMeasured},
};

/// What a PSI is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// The model's training sample (its card's profile).
    Training,
    /// The same tenant's predictions in the window before.
    Past,
}

impl Reference {
    pub const ALL: [Self; 2] = [Self::Training, Self::Past];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Training => "training",
            Self::Past => "past",
        }
    }
}

/// One series' drift in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeriesDrift {
    /// `pd` or the feature's name.
    pub name: String,
    /// PSI against the training sample; `null` without a training profile or with too few predictions.
    pub psi_training: Option<f64>,
    /// PSI against the past window; `null` when either window has too few predictions.
    pub psi_past: Option<f64>,
    /// The PD's bins (for the distribution plot); `null` for features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<BinShares>,
}

impl SeriesDrift {
    pub fn psi(&self, reference: Reference) -> Option<f64> {
        match reference {
            Reference::Training => self.psi_training,
            Reference::Past => self.psi_past,
        }
    }
}

/// A series' shares per bin: value bins cut at `edges`, then the missing bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BinShares {
    pub edges: Vec<f64>,
    pub expected: Option<Vec<f64>>,
    pub past: Option<Vec<f64>>,
    pub current: Option<Vec<f64>>,
}

/// Counts summed over a window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub rows: u64,
    pub counts: BTreeMap<String, Vec<u64>>,
}

impl Window {
    pub fn add(&mut self, rows: u64, counts: &BTreeMap<String, Vec<i64>>) {
        self.rows += rows;
        for (name, bins) in counts {
            let sum = self.counts.entry(name.clone()).or_insert_with(|| vec![0; bins.len()]);
            if sum.len() == bins.len() {
                for (s, c) in sum.iter_mut().zip(bins) {
                    *s += u64::try_from(*c).unwrap_or(0);
                }
            }
        }
    }

    /// The series' shares when it has at least `min_rows` values binned as the profile bins them.
    fn shares(&self, name: &str, bins: usize, min_rows: u64) -> Option<Vec<f64>> {
        let counts = self.counts.get(name).filter(|c| c.len() == bins)?;
        (counts.iter().sum::<u64>() >= min_rows).then(|| shares(counts))
    }
}

/// The PSI of every series of `profile` in `current`, against the training shares and against `past`.
pub fn measure(profile: &Profile, current: &Window, past: &Window, min_rows: u64) -> Vec<SeriesDrift> {
    profile
        .series
        .iter()
        .map(|series| {
            let actual = current.shares(&series.name, series.bins(), min_rows);
            let before = past.shares(&series.name, series.bins(), min_rows);
            let against = |reference: &Option<Vec<f64>>| match (reference, &actual) {
                (Some(reference), Some(actual)) => psi(reference, actual),
                _ => None,
            };
            SeriesDrift {
                name: series.name.clone(),
                psi_training: against(&series.expected),
                psi_past: against(&before),
                bins: (series.name == PD_SERIES).then(|| BinShares {
                    edges: series.edges.clone(),
                    expected: series.expected.clone(),
                    past: before.clone(),
                    current: actual.clone(),
                }),
            }
        })
        .collect()
}

/// The series above `threshold` against `reference`, largest first; `None` when nothing could be measured
/// against it (an open alert then stays as it is).
pub fn above(series: &[SeriesDrift], reference: Reference, threshold: f64) -> Option<Vec<DriftedSeries>> {
    let measured: Vec<(&str, f64)> = series
        .iter()
        .filter_map(|s| s.psi(reference).map(|psi| (s.name.as_str(), psi)))
        .collect();
    if measured.is_empty() {
        return None;
    }
    let mut over: Vec<DriftedSeries> = measured
        .into_iter()
        .filter(|(_, psi)| *psi > threshold)
        .map(|(name, psi)| DriftedSeries {
            name: name.to_owned(),
            psi,
        })
        .collect();
    over.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    Some(over)
}

/// The largest PSI among the features (not the PD) against `reference`.
pub fn features_max(series: &[SeriesDrift], reference: Reference) -> Option<f64> {
    series
        .iter()
        .filter(|s| s.name != PD_SERIES)
        .filter_map(|s| s.psi(reference))
        .max_by(f64::total_cmp)
}

/// A model's drift profile for a tenant: its profile with the PD's edges shifted to the tenant's base rate.
pub fn tenant_profile(model: &LoadedModel, mut profile: Profile, base_rate: Option<f64>) -> Profile {
    if let Some(pd) = profile.series.iter_mut().find(|s| s.name == PD_SERIES) {
        for edge in &mut pd.edges {
            *edge = model.portfolio_pd(*edge, base_rate);
        }
    }
    profile
}

/// A model's predictions of one hour: (model name, version, hour).
type HourKey = (String, i32, DateTime<Utc>);

/// Their number, and their counts per bin by series.
type HourTally = (i64, BTreeMap<String, Vec<i64>>);

/// Bins predictions into hourly counts per model.
#[derive(Default)]
struct Counter {
    hours: BTreeMap<HourKey, HourTally>,
}

impl Counter {
    fn add(&mut self, profile: &Profile, point: &stored::PredictionPoint) {
        let key = (point.model_name.clone(), point.model_version, point.hour);
        let (rows, counts) = self.hours.entry(key).or_default();
        *rows += 1;
        for series in &profile.series {
            let value = if series.name == PD_SERIES {
                Some(point.probability)
            } else if point.inputs.is_empty() {
                continue;
            } else {
                point.inputs.get(&series.name).and_then(serde_json::Value::as_f64)
            };
            let bins = counts
                .entry(series.name.clone())
                .or_insert_with(|| vec![0; series.bins()]);
            bins[series.bin(value)] += 1;
        }
    }

    fn into_rows(self) -> Vec<HourCounts> {
        self.hours
            .into_iter()
            .map(|((model_name, model_version, hour), (rows, counts))| HourCounts {
                model_name,
                model_version,
                hour,
                rows,
                counts: Json(counts),
            })
            .collect()
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Tenants done by this instance (others were being done by another).
    pub tenants: usize,
    /// Snapshots stored.
    pub snapshots: usize,
    /// Alerts raised and resolved.
    pub raised: usize,
    pub resolved: usize,
}

/// Measures drift continuously; see the module documentation.
#[derive(Clone)]
pub struct DriftMonitor {
    db: PgPool,
    messaging: Messaging,
    registry: std::sync::Arc<pdscore_actors::model_pool::SharedRegistry>,
    settings: DriftSettings,
}

impl DriftMonitor {
    pub fn new(
        db: PgPool,
        messaging: Messaging,
        registry: std::sync::Arc<pdscore_actors::model_pool::SharedRegistry>,
        settings: DriftSettings,
    ) -> Self {
        Self {
            db,
            messaging,
            registry,
            settings,
        }
    }

    pub fn settings(&self) -> &DriftSettings {
        &self.settings
    }

    /// A pass every `drift.every_secs` until `shutdown` (none when 0).
    pub async fn run(self, shutdown: CancellationToken) {
        if self.settings.every_secs == 0 {
            return;
        }
        let every = std::time::Duration::from_secs(self.settings.every_secs);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.pass(Utc::now()).await {
                Ok(report) => tracing::debug!(?report, "drift pass"),
                Err(e) => tracing::warn!(error = %e, "drift pass failed; trying again at the next"),
            }
        }
    }

    /// One pass over every tenant, as of `now`.
    #[tracing::instrument(name = "validation.drift.pass", skip_all)]
    pub async fn pass(&self, now: DateTime<Utc>) -> sqlx::Result<PassReport> {
        let mut report = PassReport::default();
        let registry = self.registry.current();
        let mut profiles = Profiles::new(&registry);
        for tenant in stored::tenants(&self.db).await? {
            match self.pass_tenant(&tenant, &mut profiles, now).await {
                Ok(Some(done)) => {
                    report.tenants += 1;
                    report.snapshots += done.snapshots;
                    report.raised += done.raised;
                    report.resolved += done.resolved;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(tenant = %tenant.slug, error = %e, "drift not measured for this tenant"),
            }
        }
        self.publish_pending().await;
        Ok(report)
    }

    /// The tenant's counts, snapshots and alerts, in one transaction; `None` when another instance holds it,
    /// or did it less than half an interval ago.
    async fn pass_tenant(
        &self,
        tenant: &MonitoredTenant,
        profiles: &mut Profiles<'_>,
        now: DateTime<Utc>,
    ) -> sqlx::Result<Option<PassReport>> {
        let hour = TimeDelta::hours(1);
        let this_hour = now.duration_trunc(hour).unwrap_or(now);
        let window = TimeDelta::hours(i64::from(self.settings.window_hours));
        let current_start = this_hour + hour - window;
        let past_start = current_start - window;

        let mut tx = self.db.begin().await?;
        if !stored::try_lock(&mut tx, tenant.id).await? {
            return Ok(None);
        }
        let progress = stored::progress(&mut tx, tenant.id).await?;
        let recently = now - TimeDelta::milliseconds(i64::try_from(self.settings.every_secs * 500).unwrap_or(i64::MAX));
        if progress.and_then(|p| p.passed_at).is_some_and(|at| at > recently) {
            return Ok(None);
        }
        let mut profiles = TenantProfiles {
            profiles,
            base_rate: tenant.base_rate,
            shifted: HashMap::new(),
        };
        let from = match progress {
            Some(p) => (p.counted_through - hour).clamp(past_start, this_hour),
            None => past_start,
        };
        let mut counter = Counter::default();
        {
            let mut points = stored::predictions_since(&mut tx, tenant.id, from);
            while let Some(point) = points.try_next().await? {
                if let Some(profile) = profiles.get(&point.model_name, point.model_version) {
                    counter.add(profile, &point);
                }
            }
        }
        stored::replace_counts(&mut tx, tenant.id, from, &counter.into_rows()).await?;
        stored::set_progress(&mut tx, tenant.id, this_hour, now).await?;
        stored::prune(&mut tx, tenant.id, past_start).await?;

        let mut windows: BTreeMap<ModelKey, (Window, Window)> = BTreeMap::new();
        for row in stored::counts_since(&mut tx, tenant.id, past_start).await? {
            let (current, past) = windows.entry((row.model_name.clone(), row.model_version)).or_default();
            let target = if row.hour >= current_start { current } else { past };
            target.add(u64::try_from(row.rows).unwrap_or(0), &row.counts);
        }
        let open = stored::open_alerts(&mut tx, tenant.id).await?;
        let mut report = PassReport::default();
        for ((model_name, model_version), (current, past)) in windows {
            let Some(profile) = profiles.get(&model_name, model_version) else {
                continue;
            };
            let series = measure(profile, &current, &past, self.settings.min_rows);
            let model = format!("{model_name}@{model_version}");
            for reference in Reference::ALL {
                DriftMeasured {
                    tenant: &tenant.slug,
                    model: &model,
                    reference: reference.as_str(),
                    pd: series
                        .iter()
                        .find(|s| s.name == PD_SERIES)
                        .and_then(|s| s.psi(reference)),
                    features_max: features_max(&series, reference),
                }
                .emit();
                let Some(over) = above(&series, reference, self.settings.threshold) else {
                    continue;
                };
                let version = u32::try_from(model_version).unwrap_or_default();
                let opened = open.iter().find(|a| {
                    a.model_name == model_name && a.model_version == model_version && a.reference == reference.as_str()
                });
                match opened {
                    None if !over.is_empty() => {
                        let listed = serde_json::to_value(&over).unwrap_or_default();
                        let raised = stored::raise(
                            &mut tx,
                            tenant.id,
                            (&model_name, version),
                            reference.as_str(),
                            self.settings.threshold,
                            listed,
                        )
                        .await?;
                        if raised.is_some() {
                            report.raised += 1;
                            DriftAlertRaised {
                                reference: reference.as_str(),
                            }
                            .emit();
                        }
                    }
                    Some(alert) if over.is_empty() => {
                        stored::resolve(&mut tx, tenant.id, alert.id).await?;
                        report.resolved += 1;
                    }
                    _ => {}
                }
            }
            stored::upsert_snapshot(
                &mut tx,
                tenant.id,
                &SnapshotRow {
                    model_name,
                    model_version,
                    hour: this_hour,
                    computed_at: now,
                    window_hours: i32::try_from(self.settings.window_hours).unwrap_or(i32::MAX),
                    current_rows: i64::try_from(current.rows).unwrap_or(i64::MAX),
                    past_rows: i64::try_from(past.rows).unwrap_or(i64::MAX),
                    series: Json(serde_json::to_value(&series).unwrap_or_default()),
                },
            )
            .await?;
            report.snapshots += 1;
        }
        tx.commit().await?;
        Ok(Some(report))
    }

    /// Publishes the drift alerts not yet on the stream (this pass's, and any an earlier pass could not
    /// publish); what fails is published at the next pass.
    async fn publish_pending(&self) {
        let pending = match stored::unpublished(&self.db).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::debug!(error = %e, "drift alerts not read");
                return;
            }
        };
        for record in pending {
            let alert = self.message(&record);
            let published =
                pdscore_nats::alerts::publish_drift(&self.messaging.jetstream, &self.messaging.namespace, &alert).await;
            match published {
                Ok(()) => {
                    if let Err(e) = stored::mark_published(&self.db, alert.tenant_id, alert.id).await {
                        tracing::warn!(error = %e, "drift alert not marked published (the stream drops a duplicate)");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "drift alert not published yet; the next pass retries"),
            }
        }
    }

    fn message(&self, pending: &stored::Unpublished) -> DriftAlert {
        let record = &pending.alert;
        DriftAlert {
            kind: DriftAlert::KIND.into(),
            schema_version: DriftAlert::SCHEMA_VERSION,
            id: record.id,
            tenant_id: record.tenant_id,
            tenant_slug: pending.tenant_slug.clone(),
            model: format!("{}@{}", record.model_name, record.model_version),
            reference: record.reference.clone(),
            threshold: record.threshold,
            series: serde_json::from_value(record.series.0.clone()).unwrap_or_default(),
            window_hours: i32::try_from(self.settings.window_hours).unwrap_or(i32::MAX),
            raised_at: record.raised_at,
        }
    }
}

/// A tenant's drift for one model: the latest snapshot, the PSIs over time and the alerts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftReport {
    pub tenant_id: uuid::Uuid,
    /// The model reported (`name@version`); `null` when no model of the tenant has been measured yet.
    pub model: Option<String>,
    /// The tenant's models with measurements, most recently measured first.
    pub models: Vec<String>,
    /// A PSI above this raises a drift alert.
    pub threshold: f64,
    /// The window measured, and the past window before it, in hours.
    pub window_hours: u32,
    /// Predictions a window needs before it is measured.
    pub min_rows: u64,
    /// The model's training sample, in words (`null`: the model has none to compare with).
    pub training_sample: Option<String>,
    /// What each feature is, by name (`{"attr1": "net profit / total assets", …}`).
    pub labels: BTreeMap<String, String>,
    pub latest: Option<DriftSnapshot>,
    /// The PD's PSIs and the largest feature PSI per hour, oldest first.
    pub history: Vec<DriftPoint>,
    /// The model's drift alerts, newest first (the last 20).
    pub alerts: Vec<stored::DriftAlertRecord>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftSnapshot {
    pub computed_at: DateTime<Utc>,
    /// Predictions in the window measured and in the past window.
    pub current_rows: i64,
    pub past_rows: i64,
    /// The PD first, then the features in the model's order.
    pub series: Vec<SeriesDrift>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftPoint {
    pub hour: DateTime<Utc>,
    pub pd_training: Option<f64>,
    pub pd_past: Option<f64>,
    pub features_max_training: Option<f64>,
    pub features_max_past: Option<f64>,
}

/// The drift report of `tenant_id` for `model` (default: its most recently measured model), with `hours` of
/// history.
pub async fn report(
    db: &PgPool,
    registry: &Registry,
    settings: &DriftSettings,
    tenant_id: uuid::Uuid,
    model: Option<ModelId>,
    hours: u32,
) -> sqlx::Result<DriftReport> {
    let mut conn = db.acquire().await?;
    let models: Vec<String> = stored::monitored_models(&mut conn, tenant_id)
        .await?
        .into_iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    let model = model.or_else(|| models.first().and_then(|m| m.parse().ok()));
    let mut report = DriftReport {
        tenant_id,
        model: model.as_ref().map(ToString::to_string),
        models,
        threshold: settings.threshold,
        window_hours: settings.window_hours,
        min_rows: settings.min_rows,
        training_sample: None,
        labels: BTreeMap::new(),
        latest: None,
        history: Vec::new(),
        alerts: Vec::new(),
    };
    let Some(model) = model else {
        return Ok(report);
    };
    if let Some(loaded) = registry.get(&model) {
        report.training_sample = Profile::of_model(&loaded)
            .ok()
            .flatten()
            .filter(|p| p.rows > 0)
            .map(|p| p.sample);
        let names = loaded.entry.feature_set.names();
        report.labels = names
            .iter()
            .zip(loaded.feature_labels())
            .map(|(n, l)| (n.to_string(), l.to_owned()))
            .collect();
    }
    let since = Utc::now() - TimeDelta::hours(i64::from(hours));
    let key = (model.name.as_str(), model.version);
    let mut latest = None;
    for row in stored::snapshots(&mut conn, tenant_id, key, since).await? {
        let series: Vec<SeriesDrift> = serde_json::from_value(row.series.0).unwrap_or_default();
        let pd = series.iter().find(|s| s.name == PD_SERIES);
        report.history.push(DriftPoint {
            hour: row.hour,
            pd_training: pd.and_then(|s| s.psi_training),
            pd_past: pd.and_then(|s| s.psi_past),
            features_max_training: features_max(&series, Reference::Training),
            features_max_past: features_max(&series, Reference::Past),
        });
        latest = Some(DriftSnapshot {
            computed_at: row.computed_at,
            current_rows: row.current_rows,
            past_rows: row.past_rows,
            series,
        });
    }
    report.latest = latest;
    report.alerts = stored::alerts(&mut conn, tenant_id, key, 20).await?;
    Ok(report)
}

/// The models' drift profiles, read from their cards once per pass (`None`: a model this instance does not
/// have, or one without a profile: not measured).
struct Profiles<'r> {
    registry: &'r Registry,
    read: HashMap<ModelKey, Option<Monitored>>,
}

/// A model as stored with its predictions: (name, version).
type ModelKey = (String, i32);

/// A model measured for drift, and its profile.
type Monitored = (Arc<LoadedModel>, Profile);

impl<'r> Profiles<'r> {
    fn new(registry: &'r Registry) -> Self {
        Self {
            registry,
            read: HashMap::new(),
        }
    }

    fn get(&mut self, name: &str, version: i32) -> Option<&Monitored> {
        let registry = self.registry;
        self.read
            .entry((name.to_owned(), version))
            .or_insert_with(|| {
                let id = ModelId {
                    name: name.to_owned(),
                    version: u32::try_from(version).ok()?,
                };
                let model = registry.get(&id)?;
                let profile = Profile::of_model(&model)
                    .inspect_err(|e| tracing::warn!(error = %e, "model not monitored for drift"))
                    .ok()
                    .flatten()?;
                Some((model, profile))
            })
            .as_ref()
    }
}

/// One tenant's profiles: the pass's, shifted to its base rate when first needed.
struct TenantProfiles<'p, 'r> {
    profiles: &'p mut Profiles<'r>,
    base_rate: Option<f64>,
    shifted: HashMap<ModelKey, Option<Profile>>,
}

impl TenantProfiles<'_, '_> {
    fn get(&mut self, name: &str, version: i32) -> Option<&Profile> {
        let (profiles, base_rate) = (&mut *self.profiles, self.base_rate);
        self.shifted
            .entry((name.to_owned(), version))
            .or_insert_with(|| {
                let (model, profile) = profiles.get(name, version)?;
                Some(tenant_profile(model, profile.clone(), base_rate))
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use pdscore_models::drift::Series;

    use super::*;

    fn profile() -> Profile {
        Profile {
            sample: "test".into(),
            rows: 4,
            series: vec![
                Series {
                    name: PD_SERIES.into(),
                    edges: vec![0.5],
                    expected: Some(vec![0.5, 0.5, 0.0]),
                },
                Series {
                    name: "x".into(),
                    edges: vec![0.0],
                    expected: None,
                },
            ],
        }
    }

    fn window(pd: [i64; 3], x: [i64; 3]) -> Window {
        let mut w = Window::default();
        w.add(
            pd.iter().sum::<i64>() as u64,
            &BTreeMap::from([("pd".to_owned(), pd.to_vec()), ("x".to_owned(), x.to_vec())]),
        );
        w
    }

    #[test]
    fn series_are_measured_against_the_training_shares_and_the_past_window_once_both_have_enough_rows() {
        let current = window([30, 10, 0], [20, 20, 0]);
        let past = window([20, 20, 0], [40, 0, 0]);
        let measured = measure(&profile(), &current, &past, 40);
        let pd = &measured[0];
        let by_hand = psi(&[0.5, 0.5, 0.0], &[0.75, 0.25, 0.0]).unwrap();
        assert_eq!(pd.psi_training, Some(by_hand));
        assert_eq!(pd.psi_past, Some(by_hand));
        assert_eq!(
            pd.bins.as_ref().unwrap().current.as_deref(),
            Some(&[0.75, 0.25, 0.0][..])
        );
        // No training shares for x; against the past window it moved a lot.
        assert_eq!(measured[1].psi_training, None);
        assert!(measured[1].psi_past.unwrap() > 1.0);
        assert!(measured[1].bins.is_none());
        // Too few rows: nothing measured, so no alert decision either.
        let thin = measure(&profile(), &current, &past, 41);
        assert!(thin.iter().all(|s| s.psi_training.is_none() && s.psi_past.is_none()));
        assert_eq!(above(&thin, Reference::Past, 0.25), None);
        let over = above(&measured, Reference::Past, 0.25).unwrap();
        assert_eq!(over.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["x", "pd"]);
        assert_eq!(above(&measured, Reference::Training, 10.0), Some(vec![]));
        assert_eq!(features_max(&measured, Reference::Past), measured[1].psi_past);
    }
}
