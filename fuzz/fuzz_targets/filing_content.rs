//! A filing's content (`FilingContent::parse`, shared by the HTTP, NATS and bulk paths) and the feature code
//! that turns it into each model's inputs: any JSON is parsed or refused with the field at fault, and every
//! feature served is a finite number or missing — never NaN or ±inf.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pdscore_actors::{FilingContent, PredictionType};
use pdscore_models::features::FeatureSet;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let prediction_type = match body.remove("type").as_ref().and_then(Value::as_str) {
        Some("quarterly") => PredictionType::Quarterly,
        _ => PredictionType::Annual,
    };
    let year = body.remove("reporting_year").unwrap_or(Value::Null);
    let quarter = body.remove("reporting_quarter");
    let ratios = match body.remove("ratios") {
        Some(Value::Object(ratios)) => Some(ratios),
        _ => None,
    };
    let model = body.remove("model");
    let content = FilingContent::parse(
        prediction_type,
        &year,
        quarter.as_ref(),
        body.remove("statement"),
        ratios,
        model.as_ref().and_then(Value::as_str),
    );
    let Ok(content) = content else { return };
    for set in [
        FeatureSet::AccunodeAnnual,
        FeatureSet::AccunodeQuarterly,
        FeatureSet::Polish,
    ] {
        if let Ok(features) = set.assemble(content.statement.as_ref(), content.ratios.as_ref()) {
            assert_eq!(features.len(), set.len());
            for (name, value) in set.names().iter().zip(&features) {
                assert!(value.is_none_or(f64::is_finite), "{name} = {value:?}");
            }
        }
    }
});
