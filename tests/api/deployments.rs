//! Hot swap on one instance: a model version is verified before it is stored, activated for the tenants that
//! chose none, and rolled back; every step audited. (Across instances: `fleet::a_model_uploaded_on_one_instance_*`.)

use pdscore::auth::Role;
use pdscore_models::registry::{ArtifactFile, LoadedModel, ManifestEntry, sha256_hex};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, base_settings, data, spawn_app},
    pipeline::company_id,
};

/// An upload: its manifest entry and its files by path.
#[derive(Clone)]
pub struct Upload {
    pub entry: Value,
    pub files: Vec<(String, Vec<u8>)>,
}

impl Upload {
    pub fn form(&self) -> reqwest::multipart::Form {
        let mut form = reqwest::multipart::Form::new().text("entry", self.entry.to_string());
        for (path, bytes) in &self.files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(path.clone()),
            );
        }
        form
    }

    fn file_mut(&mut self, path: &str) -> &mut Vec<u8> {
        &mut self.files.iter_mut().find(|(p, _)| p == path).unwrap().1
    }

    /// Re-reads the checksums of the files into the entry.
    fn seal(&mut self) {
        for (path, bytes) in &self.files {
            let sha = json!(sha256_hex(bytes));
            for file in self.entry["files"].as_array_mut().unwrap() {
                if file["path"] == path.as_str() {
                    file["sha256"] = sha.clone();
                }
            }
            if self.entry["card"]["path"] == path.as_str() {
                self.entry["card"]["sha256"] = sha;
            }
        }
    }
}

const TREES: &str = "annual/polish-gbdt-v2.trees.json";
const CARD: &str = "annual/polish-gbdt-v2.card.json";

/// `annual/polish-gbdt@2`: the shipped trees with a base score 0.5 higher (PDs a little higher), and a card
/// whose reference rows the test scores with the model itself.
pub fn gbdt_v2() -> Upload {
    let dir = base_settings().models.dir;
    let read = |path: &str| std::fs::read(dir.join(path)).unwrap();
    let mut trees: Value = serde_json::from_slice(&read("annual/polish-gbdt-v1.trees.json")).unwrap();
    trees["base_score"] = json!(trees["base_score"].as_f64().unwrap() + 0.5);
    let mut card: Value = serde_json::from_slice(&read("annual/polish-gbdt-v1.card.json")).unwrap();
    card["id"] = json!("annual/polish-gbdt@2");
    let mut upload = Upload {
        entry: json!({ "id": "annual/polish-gbdt@2", "kind": "trees", "prediction_type": "annual", "horizon_years": 1,
                       "feature_set": "polish", "description": "gbdt@1 with a higher base score (hot-swap test)",
                       "files": [{ "path": TREES, "sha256": "" }], "card": { "path": CARD, "sha256": "" },
                       "term_structure": { "5y": "annual-5y/polish-gbdt@1" },
                       "sample_default_rate": 0.06937394247038917 }),
        files: vec![
            (TREES.into(), serde_json::to_vec(&trees).unwrap()),
            (CARD.into(), Vec::new()),
        ],
    };
    // The reference rows: three feature vectors (one with gaps) and the PDs the model gives them.
    let rows: Vec<Vec<Option<f64>>> = vec![
        vec![Some(0.1); 64],
        (0..64).map(|i| (i % 3 != 0).then_some(f64::from(i) / 50.0)).collect(),
        vec![Some(-0.4); 64],
    ];
    upload.seal();
    let entry: ManifestEntry = serde_json::from_value(upload.entry.clone()).unwrap();
    let files = upload.files.clone();
    let reader = |file: &ArtifactFile| {
        Ok(match files.iter().find(|(p, _)| *p == file.path) {
            Some((_, bytes)) if file.path == CARD => {
                if bytes.is_empty() {
                    b"{}".to_vec()
                } else {
                    bytes.clone()
                }
            }
            Some((_, bytes)) => bytes.clone(),
            None => unreachable!(),
        })
    };
    let model = LoadedModel::from_files(entry, std::path::Path::new("test"), reader, &pdscore_models::cpu()).unwrap();
    let pds = model.score_batch(&rows).unwrap();
    card["reference_rows"] = rows
        .iter()
        .zip(&pds)
        .map(|(features, output)| json!({ "features": features, "pd": output.pd }))
        .collect();
    *upload.file_mut(CARD) = serde_json::to_vec_pretty(&card).unwrap();
    upload.seal();
    upload
}

async fn post_upload(app: &TestApp, token: &str, upload: &Upload) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/api/v1/models", app.address))
        .bearer_auth(token)
        .multipart(upload.form())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Scores a healthy statement of ACME for `year`; the model that answered.
pub async fn answered_by(app: &TestApp, token: &str, year: u16) -> String {
    let acme = company_id(app, token, "ACME").await;
    let answer = data(
        app,
        "POST",
        &format!("/api/v1/companies/{acme}/predictions"),
        token,
        json!({ "type": "annual", "reporting_year": year, "statement": crate::validation::statement(2),
                "filing_id": format!("swap-{year}") }),
    )
    .await;
    answer["model"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_model_is_verified_before_it_is_deployed_then_activated_and_rolled_back() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let sa = demo.token(Role::SuperAdmin).to_owned();
    let analyst = demo.token(Role::OrgMember).to_owned();
    let good = gbdt_v2();

    // Refused, each for what is wrong, and nothing stored.
    let mut altered = good.clone();
    altered.file_mut(TREES).push(b' ');
    let mut no_rows = good.clone();
    let mut card: Value = serde_json::from_slice(no_rows.file_mut(CARD)).unwrap();
    card.as_object_mut().unwrap().remove("reference_rows");
    *no_rows.file_mut(CARD) = serde_json::to_vec(&card).unwrap();
    no_rows.seal();
    let mut wrong_pd = good.clone();
    let mut card: Value = serde_json::from_slice(wrong_pd.file_mut(CARD)).unwrap();
    card["reference_rows"][1]["pd"] = json!(card["reference_rows"][1]["pd"].as_f64().unwrap() + 1e-6);
    *wrong_pd.file_mut(CARD) = serde_json::to_vec(&card).unwrap();
    wrong_pd.seal();
    let mut bad_profile = good.clone();
    let mut card: Value = serde_json::from_slice(bad_profile.file_mut(CARD)).unwrap();
    card["training_profile"]["series"][3]["edges"] = json!([1.0, 0.5]);
    *bad_profile.file_mut(CARD) = serde_json::to_vec(&card).unwrap();
    bad_profile.seal();
    let mut other_features = good.clone();
    other_features.entry["feature_set"] = json!("accunode_annual");
    let mut missing = good.clone();
    missing.files.retain(|(p, _)| p != CARD);
    let mut extra = good.clone();
    extra.files.push(("notes.txt".into(), b"hello".to_vec()));
    let mut unknown_partner = good.clone();
    unknown_partner.entry["term_structure"]["5y"] = json!("annual-5y/polish-gbdt@7");
    for (upload, says) in [
        (&altered, "checksum mismatch"),
        (&no_rows, "no reference_rows"),
        (&wrong_pd, "reference row 1"),
        (&bad_profile, "training profile's edges"),
        (&other_features, "feature set"),
        (&missing, "not sent"),
        (&extra, "does not list it"),
        (&unknown_partner, "term structure"),
    ] {
        let (status, answer) = post_upload(&app, &sa, upload).await;
        assert_eq!(status, 422, "{says}: {answer:#}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{says}: {message}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM model_uploads")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    let (status, _) = post_upload(&app, demo.token(Role::TenantAdmin), &good).await;
    assert_eq!(status, 403);

    // Verified and deployed: listed, but answering nothing until activated.
    let (status, answer) = post_upload(&app, &sa, &good).await;
    assert_eq!(status, 201, "{answer:#}");
    assert_eq!(answer["data"]["reference_rows"], 3);
    let (status, _) = post_upload(&app, &sa, &good).await;
    assert_eq!(status, 409);
    let (_, models) = app.call("GET", "/api/v1/models", Some(&analyst), None).await;
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "annual/polish-gbdt@2")
    );
    assert_eq!(answered_by(&app, &analyst, 2020).await, "annual/polish-gbdt@1");

    // Activated: the tenants that chose none are answered by it; a rollback is the activation of the one before.
    let activate = |model: &str| json!({ "model": model });
    let (status, answer) = app
        .call(
            "POST",
            "/api/v1/models/activations",
            Some(&sa),
            Some(&activate("annual-5y/polish-gbdt@1")),
        )
        .await;
    assert_eq!(status, 422, "a five-year model answers no filing: {answer:#}");
    let (status, answer) = app
        .call(
            "POST",
            "/api/v1/models/activations",
            Some(demo.token(Role::TenantAdmin)),
            Some(&activate("annual/polish-gbdt@2")),
        )
        .await;
    assert_eq!(status, 403, "{answer:#}");
    let (status, answer) = app
        .call(
            "POST",
            "/api/v1/models/activations",
            Some(&sa),
            Some(&activate("annual/polish-gbdt@2")),
        )
        .await;
    assert_eq!(status, 201, "{answer:#}");
    assert_eq!(answer["data"]["previous"], "annual/polish-gbdt@1");
    assert_eq!(answered_by(&app, &analyst, 2021).await, "annual/polish-gbdt@2");
    let (_, models) = app
        .call(
            "GET",
            &format!("/api/v1/tenants/{}/models", demo.setup.tenant_id),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(models["data"][0]["model"], "annual/polish-gbdt@2");
    assert_eq!(models["data"][0]["service_default"], true);
    let (status, answer) = app
        .call(
            "POST",
            "/api/v1/models/activations",
            Some(&sa),
            Some(&activate("annual/polish-gbdt@1")),
        )
        .await;
    assert_eq!(status, 201, "{answer:#}");
    assert_eq!(answer["data"]["previous"], "annual/polish-gbdt@2");
    assert_eq!(answered_by(&app, &analyst, 2022).await, "annual/polish-gbdt@1");
    let (_, history) = app
        .call("GET", "/api/v1/models/activations", Some(&analyst), None)
        .await;
    let models: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["annual/polish-gbdt@1", "annual/polish-gbdt@2"]);
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE target_type = 'model' ORDER BY created_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(actions, ["model.upload", "model.activate", "model.activate"]);
}
