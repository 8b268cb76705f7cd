//! Sign-in, sessions and token verification against the real PostgreSQL and Redis.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pdscore::{
    auth::Role,
    auth::{keys, tokens::Claims},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Demo, SIGNING_KEY, TestApp, spawn_app, spawn_app_with};

/// The claims of a valid token, decoded without verification (tests then alter and re-sign them).
pub fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub fn sign(claims: &Claims, key_pem: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(
        pdscore::auth::keys::KeySet::from_pems(key_pem, &[])
            .unwrap()
            .signing_kid()
            .to_owned(),
    );
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap()).unwrap()
}

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    app.call("GET", "/api/v1/auth/me", Some(token), None).await
}

async fn assert_refused(app: &TestApp, token: &str) {
    let (status, body) = me(app, token).await;
    assert_eq!(status, 401, "{body:#}");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
}

async fn demo_app() -> (TestApp, Demo) {
    let app = spawn_app().await;
    let demo = app.demo().await;
    (app, demo)
}

#[actix_web::test]
async fn a_signed_in_user_sees_themself_and_their_permissions() {
    let (app, demo) = demo_app().await;
    let (status, body) = me(&app, demo.token(Role::OrgMember)).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["data"]["user"]["email"], "analyst@demo.example.com");
    assert_eq!(body["data"]["user"]["role"], "org_member");
    let permissions: Vec<&str> = body["data"]["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(permissions.contains(&"company:manage") && !permissions.contains(&"user:manage"));
    assert!(body["data"]["user"].get("password_hash").is_none());
}

#[actix_web::test]
async fn login_answers_the_same_for_an_unknown_email_and_a_wrong_password() {
    let (app, _demo) = demo_app().await;
    let wrong_password = json!({ "email": "admin@demo.example.com", "password": "not the password at all" });
    let unknown = json!({ "email": "nobody@demo.example.com", "password": "not the password at all" });
    let (s1, b1) = app
        .call("POST", "/api/v1/auth/login", None, Some(&wrong_password))
        .await;
    let (s2, b2) = app.call("POST", "/api/v1/auth/login", None, Some(&unknown)).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1["error"], b2["error"]);
    assert_eq!(b1["error"]["message"], "Invalid e-mail or password.");
}

#[actix_web::test]
async fn a_deactivated_account_cannot_sign_in_and_its_sessions_end() {
    let (app, demo) = demo_app().await;
    let viewer = demo.setup.user(Role::User);
    let viewer_token = demo.token(Role::User);
    let user_id = claims_of(viewer_token).sub;
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{user_id}"),
            Some(demo.token(Role::TenantAdmin)),
            Some(&json!({ "is_active": false })),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_refused(&app, viewer_token).await;
    let login = json!({ "email": viewer.email, "password": viewer.password });
    let (status, _) = app.call("POST", "/api/v1/auth/login", None, Some(&login)).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn login_is_throttled_per_account_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.auth.login_attempts_per_account = 3;
    })
    .await;
    let _demo = app.demo().await;
    let attempt = json!({ "email": "admin@demo.example.com", "password": "wrong wrong wrong" });
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = app.send("POST", "/api/v1/auth/login", None, Some(&attempt)).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=900).contains(&retry_after));
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "RATE_LIMITED");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    // Other accounts are not affected.
    let other = json!({ "email": "analyst@demo.example.com", "password": "wrong wrong wrong" });
    let (status, _) = app.call("POST", "/api/v1/auth/login", None, Some(&other)).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn login_is_throttled_per_client_address() {
    let app = spawn_app_with(|s| {
        s.auth.login_attempts_per_address = 2;
    })
    .await;
    let mut statuses = Vec::new();
    for email in ["a@demo.example.com", "b@demo.example.com", "c@demo.example.com"] {
        let attempt = json!({ "email": email, "password": "wrong wrong wrong" });
        statuses.push(app.call("POST", "/api/v1/auth/login", None, Some(&attempt)).await.0);
    }
    assert_eq!(statuses, [401, 401, 429]);
}

#[actix_web::test]
async fn a_locked_account_still_signs_in_with_its_password_from_an_address_that_was_not_failing() {
    let app = spawn_app_with(|s| {
        s.auth.login_attempts_per_account = 3;
        s.auth.trust_forwarded_for = true;
    })
    .await;
    let demo = app.demo().await;
    let victim = demo.setup.user(Role::TenantAdmin);
    let sign_in = |from: &'static str, password: String| {
        let app = &app;
        let email = victim.email.clone();
        async move {
            app.client
                .post(format!("{}/api/v1/auth/login", app.address))
                .header("X-Forwarded-For", from)
                .json(&json!({ "email": email, "password": password }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut attacker = Vec::new();
    for _ in 0..4 {
        attacker.push(sign_in("203.0.113.7", "wrong wrong wrong".into()).await);
    }
    assert_eq!(attacker, [401, 401, 401, 429]);
    // The attacker's address stays refused, even with the right password (no oracle for its guesses)...
    assert_eq!(sign_in("203.0.113.7", victim.password.clone()).await, 429);
    // ...and the owner signs in from their own address.
    assert_eq!(sign_in("198.51.100.20", victim.password.clone()).await, 200);
}

#[actix_web::test]
async fn token_refresh_and_password_change_are_throttled() {
    let app = spawn_app_with(|s| {
        s.auth.refreshes_per_address = 2;
        s.auth.password_changes_per_account = 2;
    })
    .await;
    let demo = app.demo().await;
    let mut refreshes = Vec::new();
    for _ in 0..3 {
        let body = json!({ "refresh_token": "not a token" });
        refreshes.push(app.call("POST", "/api/v1/auth/refresh", None, Some(&body)).await.0);
    }
    assert_eq!(refreshes, [401, 401, 429]);
    let token = demo.token(Role::OrgMember);
    let mut changes = Vec::new();
    for _ in 0..3 {
        let body = json!({ "current_password": "wrong wrong wrong", "new_password": "a brand new passphrase" });
        changes.push(
            app.call("POST", "/api/v1/auth/change-password", Some(token), Some(&body))
                .await
                .0,
        );
    }
    assert_eq!(changes[2], 429, "{changes:?}");
    assert_ne!(changes[0], 429);
}

#[actix_web::test]
async fn a_refresh_token_rotates_and_a_reused_one_ends_the_whole_session() {
    let (app, demo) = demo_app().await;
    let admin = demo.setup.user(Role::TenantAdmin);
    let first = app.login(&admin.email, &admin.password).await;
    let refresh = |token: &Value| json!({ "refresh_token": token });

    let (status, second) = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(&refresh(&first["refresh_token"])),
        )
        .await;
    assert_eq!(status, 200, "{second:#}");
    let second = &second["data"];
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(
        claims_of(second["access_token"].as_str().unwrap()).sid,
        claims_of(first["access_token"].as_str().unwrap()).sid
    );
    assert_eq!(me(&app, second["access_token"].as_str().unwrap()).await.0, 200);

    // The first refresh token again: someone copied it. The family ends, including the legitimate new pair.
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(&refresh(&first["refresh_token"])),
        )
        .await;
    assert_eq!(status, 401);
    assert_refused(&app, second["access_token"].as_str().unwrap()).await;
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(&refresh(&second["refresh_token"])),
        )
        .await;
    assert_eq!(status, 401);
    // Other sessions of the same user are untouched.
    assert_eq!(me(&app, demo.token(Role::TenantAdmin)).await.0, 200);
    let reuse_audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.refresh_reuse_detected'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(reuse_audited, 1);
}

#[actix_web::test]
async fn logout_revokes_the_session_at_once_and_logout_all_every_session() {
    let (app, demo) = demo_app().await;
    let member = demo.setup.user(Role::OrgMember);
    let other = app.login(&member.email, &member.password).await;
    let other_token = other["access_token"].as_str().unwrap();

    let (status, _) = app.call("POST", "/api/v1/auth/logout", Some(other_token), None).await;
    assert_eq!(status, 200);
    assert_refused(&app, other_token).await;
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(&json!({ "refresh_token": other["refresh_token"] })),
        )
        .await;
    assert_eq!(status, 401, "the session's refresh token ends with it");
    assert_eq!(
        me(&app, demo.token(Role::OrgMember)).await.0,
        200,
        "only that session ended"
    );

    let third = app.login(&member.email, &member.password).await;
    let (status, body) = app
        .call(
            "POST",
            "/api/v1/auth/logout-all",
            Some(demo.token(Role::OrgMember)),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["sessions_ended"], 2);
    assert_refused(&app, demo.token(Role::OrgMember)).await;
    assert_refused(&app, third["access_token"].as_str().unwrap()).await;
}

#[actix_web::test]
async fn a_revoked_session_stays_revoked_after_redis_forgets_it() {
    let (app, demo) = demo_app().await;
    let token = demo.token(Role::OrgAdmin);
    let (status, _) = app.call("POST", "/api/v1/auth/logout", Some(token), None).await;
    assert_eq!(status, 200);
    // Redis keeps nothing on disk: after a restart it knows no session. PostgreSQL still does.
    let mut redis = redis::Client::open(pdscore_redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let sid = claims_of(token).sid;
    let key = format!("{}:session:{sid}", app.settings.redis.key_prefix);
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut redis).await.unwrap();
    assert_refused(&app, token).await;
    // And a live session is recognised again from PostgreSQL.
    let live = demo.token(Role::OrgMember);
    let key = format!("{}:session:{}", app.settings.redis.key_prefix, claims_of(live).sid);
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut redis).await.unwrap();
    assert_eq!(me(&app, live).await.0, 200);
}

fn pdscore_redis_url() -> String {
    secrecy::ExposeSecret::expose_secret(&crate::helpers::base_settings().redis.url).to_owned()
}

#[actix_web::test]
async fn changing_the_password_ends_other_sessions_but_not_this_one() {
    let (app, demo) = demo_app().await;
    let admin = demo.setup.user(Role::OrgAdmin);
    let other = app.login(&admin.email, &admin.password).await;
    let current = demo.token(Role::OrgAdmin);

    let weak = json!({ "current_password": admin.password, "new_password": "short" });
    let (status, body) = app
        .call("POST", "/api/v1/auth/change-password", Some(current), Some(&weak))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"]["field"], "new_password");
    let wrong = json!({ "current_password": "not my password!", "new_password": "a brand new passphrase" });
    let (status, _) = app
        .call("POST", "/api/v1/auth/change-password", Some(current), Some(&wrong))
        .await;
    assert_eq!(status, 422);

    let change = json!({ "current_password": admin.password, "new_password": "a brand new passphrase" });
    let (status, body) = app
        .call("POST", "/api/v1/auth/change-password", Some(current), Some(&change))
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(me(&app, current).await.0, 200);
    assert_refused(&app, other["access_token"].as_str().unwrap()).await;
    let old = json!({ "email": admin.email, "password": admin.password });
    assert_eq!(app.call("POST", "/api/v1/auth/login", None, Some(&old)).await.0, 401);
    app.login(&admin.email, "a brand new passphrase").await;
}

#[actix_web::test]
async fn the_jwks_document_publishes_the_signing_key() {
    let app = spawn_app().await;
    let (status, body) = app.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(status, 200);
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    let expected = keys::KeySet::from_pems(&SIGNING_KEY.1, &[]).unwrap();
    assert_eq!(keys[0]["kid"], expected.signing_kid());
}

#[actix_web::test]
async fn tokens_of_a_rotated_out_key_still_verify_while_its_public_key_is_listed() {
    // The service now signs with a new key and still lists the old (the test key) for verification.
    let new_key = keys::generate_private_key_pem().unwrap();
    let dir = std::env::temp_dir().join(format!("pdscore-rotation-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("new.pem"), &new_key).unwrap();
    std::fs::write(dir.join("old.pub.pem"), keys::public_key_pem(&SIGNING_KEY.1).unwrap()).unwrap();
    let app = spawn_app_with(|s| {
        s.auth.jwt_private_key_path = dir.join("new.pem");
        s.auth.jwt_public_key_paths = vec![dir.join("old.pub.pem")];
    })
    .await;
    let demo = app.demo().await;
    let new_token = demo.token(Role::OrgMember).to_owned();
    let old_token = sign(&claims_of(&new_token), &SIGNING_KEY.1);
    assert_ne!(old_token, new_token);
    assert_eq!(me(&app, &new_token).await.0, 200);
    assert_eq!(me(&app, &old_token).await.0, 200);
    let (_, jwks) = app.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[actix_web::test]
async fn a_token_with_alg_none_is_refused() {
    let (app, demo) = demo_app().await;
    let claims = claims_of(demo.token(Role::TenantAdmin));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    assert_refused(&app, &format!("{header}.{payload}.")).await;
    assert_refused(&app, &format!("{header}.{payload}")).await;
}

#[actix_web::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    let (app, demo) = demo_app().await;
    let claims = claims_of(demo.token(Role::TenantAdmin));
    let public_pem = keys::public_key_pem(&SIGNING_KEY.1).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(
        keys::KeySet::from_pems(&SIGNING_KEY.1, &[])
            .unwrap()
            .signing_kid()
            .to_owned(),
    );
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(public_pem.as_bytes())).unwrap();
    assert_refused(&app, &token).await;
}

#[actix_web::test]
async fn a_token_with_the_wrong_issuer_or_audience_is_refused() {
    let (app, demo) = demo_app().await;
    let claims = claims_of(demo.token(Role::TenantAdmin));
    let wrong_issuer = Claims {
        iss: "someone-else".into(),
        ..claims.clone()
    };
    assert_refused(&app, &sign(&wrong_issuer, &SIGNING_KEY.1)).await;
    let wrong_audience = Claims {
        aud: "another-api".into(),
        ..claims.clone()
    };
    assert_refused(&app, &sign(&wrong_audience, &SIGNING_KEY.1)).await;
    // The same claims, correctly signed, pass: the refusals above are about iss/aud only.
    assert_eq!(me(&app, &sign(&claims, &SIGNING_KEY.1)).await.0, 200);
}

#[actix_web::test]
async fn an_expired_token_is_refused_with_a_hint_to_refresh() {
    let (app, demo) = demo_app().await;
    let now = chrono::Utc::now().timestamp();
    let expired = Claims {
        iat: now - 3600,
        exp: now - 120,
        ..claims_of(demo.token(Role::TenantAdmin))
    };
    let (status, body) = me(&app, &sign(&expired, &SIGNING_KEY.1)).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"));
}

#[actix_web::test]
async fn a_tampered_token_is_refused() {
    let (app, demo) = demo_app().await;
    let token = demo.token(Role::User);
    let mut claims = claims_of(token);
    claims.role = Role::TenantAdmin;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    assert_refused(&app, &parts.join(".")).await;
    // A token signed by a key that is not ours, with a kid that is not ours.
    let stranger = keys::generate_private_key_pem().unwrap();
    assert_refused(&app, &sign(&claims, &stranger)).await;
    for garbage in ["", "abc", "a.b.c", "Bearer", &"x".repeat(10_000)] {
        assert_refused(&app, garbage).await;
    }
}

#[actix_web::test]
async fn requests_without_a_bearer_token_are_unauthorized_with_a_challenge() {
    let app = spawn_app().await;
    let response = app.send("GET", "/api/v1/companies", None, None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let response = app
        .client
        .get(format!("{}/api/v1/companies", app.address))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[actix_web::test]
async fn sessions_need_redis_and_say_so() {
    let proxy = crate::helpers::TcpProxy::start(crate::helpers::host_port(&pdscore_redis_url())).await;
    let url = proxy.url_for(&pdscore_redis_url());
    let app = spawn_app_with(|s| {
        s.redis.url = secrecy::SecretString::from(url);
        s.redis.timeout_ms = 300;
    })
    .await;
    let demo = app.demo().await;
    proxy.cut().await;
    let response = app
        .send("GET", "/api/v1/auth/me", Some(demo.token(Role::OrgMember)), None)
        .await;
    assert_eq!(response.status(), 503, "fail closed, not open");
    assert!(response.headers().contains_key("retry-after"));
    proxy.restore().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut last = 0;
    for _ in 0..20 {
        last = me(&app, demo.token(Role::OrgMember)).await.0;
        if last == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, 200);
}

/// Instances of one deployment accept each other's tokens, or do not run side by side: an instance that could
/// not verify a running one's tokens (its own ephemeral key, another key), or whose tokens the running one
/// could not verify, refuses to start and says what to configure. One with the same key starts, and so does
/// the second step of a rotation: the running instance already verifies the new key, the new instance signs
/// with it and verifies the old one.
#[actix_web::test]
async fn an_instance_whose_tokens_another_could_not_verify_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("pdscore-rotation-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let write_key = |name: &str| {
        let pem = keys::generate_private_key_pem().unwrap();
        let (private, public) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.pub.pem")));
        std::fs::write(&private, &pem).unwrap();
        std::fs::write(&public, keys::public_key_pem(&pem).unwrap()).unwrap();
        (private, public)
    };
    let (next_key, next_public) = write_key("next");
    let (other_key, _) = write_key("other");
    let running_public = dir.join("running.pub.pem");
    std::fs::write(&running_public, keys::public_key_pem(&SIGNING_KEY.1).unwrap()).unwrap();
    // The running instance signs with the deployment's key and already verifies the next one.
    let app = spawn_app_with(|s| s.auth.jwt_public_key_paths = vec![next_public.clone()]).await;
    let second = |configure: &dyn Fn(&mut pdscore::configuration::Settings)| {
        let mut settings = app.settings.clone();
        settings.application.listen = "127.0.0.1:0".parse().unwrap();
        settings.auth.jwt_public_key_paths = Vec::new();
        configure(&mut settings);
        pdscore::startup::Application::build(settings)
    };
    let refusal = |result: anyhow::Result<pdscore::startup::Application>| match result {
        Ok(_) => panic!("the second instance started"),
        Err(e) => format!("{e:#}"),
    };
    let started = |result: anyhow::Result<pdscore::startup::Application>| {
        let second = result.expect("the second instance starts");
        second.shutdown_token().cancel();
    };

    let ephemeral = refusal(second(&|s| s.auth.jwt_private_key_path = Default::default()).await);
    assert!(
        ephemeral.contains("cannot verify") && ephemeral.contains("no auth.jwt_private_key_path is set"),
        "{ephemeral}"
    );
    let unverified = refusal(
        second(&|s| {
            s.auth.jwt_private_key_path = other_key.clone();
            s.auth.jwt_public_key_paths = vec![running_public.clone()];
        })
        .await,
    );
    assert!(unverified.contains("cannot verify this instance's key"), "{unverified}");
    started(second(&|_| {}).await);
    started(
        second(&|s| {
            s.auth.jwt_private_key_path = next_key.clone();
            s.auth.jwt_public_key_paths = vec![running_public.clone()];
        })
        .await,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
