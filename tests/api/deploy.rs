//! The deployment files, which cannot run here (no Docker engine): `docker-compose.yml` parsed and checked for
//! what `docker compose up --scale pdscore=3` needs, against the Dockerfile it builds.

use serde_json::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml")).unwrap();
    yaml_serde::from_str(&text).expect("docker-compose.yml is YAML")
}

fn dockerfile() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap()
}

/// `SOURCE:TARGET[:ro]` of a service's volumes, as (source, target).
fn mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let mut parts = v.as_str()?.split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

fn env<'a>(service: &'a Value, name: &str) -> Option<&'a str> {
    service["environment"][name].as_str()
}

/// The directory a path is in, and the volume mounted there.
fn volume_at<'a>(mounts: &'a [(String, String)], path: &str) -> Option<&'a str> {
    mounts
        .iter()
        .find(|(_, target)| path.starts_with(&format!("{target}/")) || path == target)
        .map(|(source, _)| source.as_str())
}

#[test]
fn the_service_scales_behind_the_proxy_with_one_key_and_uploads_in_the_object_store() {
    let compose = compose();
    let services = &compose["services"];
    let pdscore = &services["pdscore"];

    // Scalable: no fixed host port on the replicas; the proxy publishes one and forwards to all of them.
    assert!(pdscore["ports"].is_null(), "replicas cannot all bind a host port");
    assert_eq!(pdscore["expose"][0].as_str(), Some("8080"));
    assert!(pdscore["healthcheck"]["test"].is_array());
    for dependency in ["postgres", "redis", "nats"] {
        assert_eq!(
            pdscore["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy"),
            "{dependency}"
        );
        assert!(
            services[dependency]["healthcheck"]["test"].is_array(),
            "{dependency} has a health check"
        );
    }

    let proxy = &services["proxy"];
    assert_eq!(proxy["ports"][0].as_str(), Some("8080:80"));
    assert_eq!(
        proxy["depends_on"]["pdscore"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert!(proxy["healthcheck"]["test"].is_array());
    let config_name = proxy["configs"][0]["source"].as_str().unwrap();
    let nginx = compose["configs"][config_name]["content"].as_str().unwrap();
    for needed in [
        "resolver 127.0.0.11",
        "http://pdscore:8080",
        "proxy_buffering off",
        "proxy_read_timeout",
    ] {
        assert!(nginx.contains(needed), "the proxy's configuration lacks {needed:?}");
    }
    // Compose interpolates `$name`: nginx's variables must be written `$$name`.
    let unescaped = nginx
        .match_indices('$')
        .filter(|(at, _)| {
            let before = nginx[..*at].ends_with('$');
            let after = nginx[at + 1..].starts_with('$');
            !before && !after
        })
        .count();
    assert_eq!(unescaped, 0, "a `$` compose would interpolate in:\n{nginx}");
    assert_eq!(env(pdscore, "PDSCORE__AUTH__TRUST_FORWARDED_FOR"), Some("true"));

    // One signing key: made once by jwt-key into a volume every replica mounts, before any replica starts.
    let key = env(pdscore, "PDSCORE__AUTH__JWT_PRIVATE_KEY_PATH").expect("the replicas name a signing key");
    let pdscore_mounts = mounts(pdscore);
    let keys_volume = volume_at(&pdscore_mounts, key).expect("the key is on a volume");
    let maker = &services["jwt-key"];
    assert_eq!(
        pdscore["depends_on"]["jwt-key"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    assert_eq!(
        volume_at(&mounts(maker), key),
        Some(keys_volume),
        "jwt-key writes where the replicas read"
    );
    let command = maker["command"][0].as_str().unwrap();
    assert!(
        command.contains(&format!("[ -f {key} ]")) && command.contains(&format!("generate-jwt-key --out {key}")),
        "made once: {command}"
    );

    // Uploads in JetStream's Object Store, on the NATS server's persistent volume: no replica's disk holds
    // one beyond its request or its job, so the replicas share no upload volume. The image's scratch directory
    // is created owned by the service user (a directory the image lacks would come up root-owned).
    let nats = &services["nats"];
    let nats_args: Vec<&str> = nats["command"]
        .as_array()
        .expect("nats runs with arguments")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(nats_args.contains(&"-js"), "JetStream enabled: {nats_args:?}");
    let store_dir = nats_args
        .windows(2)
        .find(|w| w[0] == "-sd")
        .map(|w| w[1])
        .expect("JetStream's storage directory is set");
    let nats_mounts = mounts(nats);
    let nats_volume = volume_at(&nats_mounts, store_dir).expect("JetStream's storage is on a volume");
    assert!(
        compose["volumes"].get(nats_volume).is_some(),
        "volume {nats_volume} is declared"
    );
    let dockerfile = dockerfile();
    let storage = dockerfile
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once("PDSCORE__STORAGE__DIR=")
                .map(|(_, dir)| dir.trim_end_matches(" \\"))
        })
        .expect("the image sets its scratch directory");
    assert!(
        volume_at(&pdscore_mounts, storage).is_none(),
        "the scratch directory {storage} needs no shared volume"
    );
    let key_dir = key.rsplit_once('/').unwrap().0;
    let created = dockerfile
        .lines()
        .find(|l| l.contains("install -d -o pdscore -g pdscore"))
        .expect("the image creates its directories for the service user");
    for dir in [storage, key_dir] {
        assert!(
            created.split_whitespace().any(|word| word == dir),
            "{dir} is not created owned by pdscore"
        );
    }
    assert!(
        compose["volumes"].get(keys_volume).is_some(),
        "volume {keys_volume} is declared"
    );
}
