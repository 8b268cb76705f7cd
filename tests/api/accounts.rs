use pdscore::{
    accounts::{self, CreateAccountError},
    auth::Role,
    auth::password,
};
use secrecy::SecretString;

use crate::helpers::spawn_app;

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

#[actix_web::test]
async fn create_super_admin_stores_an_argon2id_hash_and_an_audit_row() {
    let app = spawn_app().await;

    let id = accounts::create_super_admin(&app.db, " Root@Example.com ", "Root", secret("a long enough secret"))
        .await
        .unwrap();

    let (email, role, hash): (String, String, String) =
        sqlx::query_as("SELECT email, role::text, password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((email.as_str(), role.as_str()), ("root@example.com", "super_admin"));
    assert!(hash.starts_with("$argon2id$"));
    assert!(password::verify(secret("a long enough secret"), hash).await.unwrap());
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'user.create' AND target_id = $1 AND actor_kind = 'cli'",
    )
    .bind(id.to_string())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[actix_web::test]
async fn create_super_admin_refuses_a_taken_email_a_bad_email_and_a_weak_password() {
    let app = spawn_app().await;
    accounts::create_super_admin(&app.db, "root@example.com", "", secret("a long enough secret"))
        .await
        .unwrap();

    let taken = accounts::create_super_admin(&app.db, "ROOT@example.com", "", secret("another long secret")).await;
    let bad_email = accounts::create_super_admin(&app.db, "not-an-email", "", secret("a long enough secret")).await;
    let weak = accounts::create_super_admin(&app.db, "other@example.com", "", secret("short")).await;

    assert!(matches!(taken, Err(CreateAccountError::EmailTaken(_))), "{taken:?}");
    assert!(
        matches!(bad_email, Err(CreateAccountError::InvalidValue(_))),
        "{bad_email:?}"
    );
    assert!(matches!(weak, Err(CreateAccountError::WeakPassword(_))), "{weak:?}");
}

#[actix_web::test]
async fn demo_setup_is_idempotent_and_always_prints_working_credentials() {
    let app = spawn_app().await;

    let first = accounts::demo_setup(&app.db).await.unwrap();
    let second = accounts::demo_setup(&app.db).await.unwrap();

    assert_eq!(first.tenant_id, second.tenant_id);
    assert_eq!(first.organization_id, second.organization_id);
    assert_eq!(second.users.len(), 5, "one account per role");
    let (before, after) = (first.user(Role::TenantAdmin), second.user(Role::TenantAdmin));
    assert_ne!(before.password, after.password);
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
        .bind(&after.email)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(password::verify(secret(&after.password), hash.clone()).await.unwrap());
    assert!(!password::verify(secret(&before.password), hash).await.unwrap());
    let (users, companies): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM companies)")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((users, companies), (5, 3));
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(tenants, 1);
}
