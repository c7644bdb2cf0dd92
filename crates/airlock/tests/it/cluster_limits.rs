//! Two consoles on one database, as behind a load balancer: the limits that stop an attacker
//! hold across them as if they were one console (one-time codes, password guessing, refresh
//! replays), and what they share to do so is sealed where it holds secrets.
//!
//! Runs on SQLite (two processes on one file) and, with `AIRLOCK_TEST_DATABASE=postgres`, on
//! PostgreSQL.

use crate::common::*;
use serde_json::{json, Value};

/// The one-time code of a TOTP secret (base32, as `user enable-mfa` shows it) now.
fn code_now(secret: &str, user: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, user.into());
    totp.unwrap().generate_current().unwrap()
}

/// `POST /v1/login` with a password: (status, body).
async fn try_password(console: &Console, user: &str, password: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/login", console.url))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_time_code_used_at_one_console_is_refused_at_the_other() {
    let a = Console::start();
    a.login();
    a.add_user("gus", &[]);
    let enabled = a.json(&["user", "enable-mfa", "gus"]);
    let b = Console::start_sharing(&a, &[]);
    let code = code_now(enabled["secret"].as_str().unwrap(), "gus");
    let login = |console: &Console| {
        console.cli_in(
            "config-gus-otp",
            &["login", "--user", "gus", "--password-stdin", "--otp", &code],
            "gus-password-123\n",
        )
    };
    ok(login(&a), &["login at the first console with the code"]);
    // Whoever saw the code cannot use it again at the other console.
    let again = login(&b);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already used"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn password_guessing_spread_over_two_consoles_is_throttled_as_if_on_one() {
    let a = Console::start();
    let b = Console::start_sharing(&a, &[]);
    let guess = "guess-Zq81-not-the-password";
    // Five wrong passwords, alternating: neither console saw five, together they did.
    for i in 0..5 {
        let at = if i % 2 == 0 { &a } else { &b };
        let (status, body) = try_password(at, "admin", guess).await;
        assert_eq!(status, 401, "{body}");
    }
    // Now both make every attempt wait, the right password too.
    let (at_a, at_b) = tokio::join!(
        try_password(&a, "admin", ADMIN_PASSWORD),
        try_password(&b, "admin", ADMIN_PASSWORD)
    );
    assert_eq!(at_a.0, 429, "{}", at_a.1);
    assert_eq!(at_b.0, 429, "{}", at_b.1);
    // After the wait the right password works at either, and clears the count for both.
    let (status, body) = try_password(&b, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = try_password(&a, "admin", guess).await;
    assert_eq!(status, 401, "a cleared count still throttles: {body}");
}

/// Everything the shared database holds, as bytes, for leak scans.
fn database_bytes(console: &Console) -> Vec<u8> {
    if is_sqlite(&console.database) {
        let files = files_under(console.dir.path()).into_iter();
        let db: Vec<u8> = files
            .filter(|(path, _)| {
                path.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("airlock.db")
            })
            .flat_map(|(_, bytes)| bytes)
            .collect();
        assert!(!db.is_empty(), "no database file was scanned");
        return db;
    }
    let dump = std::process::Command::new("pg_dump")
        .arg(&console.database)
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(dump) = dump {
        return dump.stdout;
    }
    let tables = std::process::Command::new("psql")
        .args([
            console.database.as_str(),
            "-c",
            "SELECT * FROM refresh_answers; SELECT * FROM vault_records;",
        ])
        .output()
        .unwrap();
    assert!(tables.status.success());
    tables.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_whose_answer_was_lost_is_answered_again_at_the_other_console_but_a_copied_secret_is_still_a_replay(
) {
    let moto = Moto::start();
    let ec2 = moto.ec2().await;
    let net = loopback_net(&ec2).await;
    let a = Console::start();
    a.login_with_account(&moto);
    let dep = a.json(&deploy_args(&net, &["--wait"]));
    let dep_id = dep["id"].as_str().unwrap();
    let mine = dep["instances"][0]["instance_id"].as_str().unwrap();
    let ip = described(&ec2, mine)
        .await
        .private_ip_address()
        .unwrap()
        .to_owned();
    let enrolment = enrolment_secret(&ec2, mine).await;
    let b = Console::start_sharing(&a, &[]);

    let (status, first) = refresh(&a, &ip, dep_id, mine, &enrolment).await;
    assert_eq!(status, 200, "{first}");
    // The answer was lost on the way; the agent's retry lands at the other console.
    let (status, again) = refresh(&b, &ip, dep_id, mine, &enrolment).await;
    assert_eq!(status, 200, "{again}\n{}", b.output_text());
    assert_eq!(again["refresh_secret"], first["refresh_secret"]);
    assert_eq!(again["credentials"], first["credentials"]);
    assert!(
        !b.output_text().contains("ALERT"),
        "a retry raised an alert"
    );

    // Someone who copied the secret, asking from elsewhere: a replay, at either console.
    let (status, _) = refresh(&b, "127.0.0.99", dep_id, mine, &enrolment).await;
    assert_eq!(status, 403);
    assert!(b.output_text().contains("ALERT"));

    // The kept answer is in the database only sealed.
    let db = database_bytes(&a);
    let credentials = &first["credentials"];
    for secret in [
        &first["refresh_secret"],
        &credentials["secret_access_key"],
        &credentials["session_token"],
    ] {
        let secret = secret.as_str().unwrap();
        assert!(
            !contains(&db, secret),
            "the database holds a secret of the answer in plaintext"
        );
    }

    // Once the instance has used what it was given, the old secret is a replay even from it.
    let next = first["refresh_secret"].as_str().unwrap();
    let (status, body) = refresh(&b, &ip, dep_id, mine, next).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = refresh(&a, &ip, dep_id, mine, &enrolment).await;
    assert_eq!(status, 403, "{body}");
}
