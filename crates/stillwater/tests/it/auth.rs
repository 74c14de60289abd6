//! Sign-in, sessions, CSRF, lockout, TOTP and tokens.

use crate::both;
use crate::helpers::*;

async fn wrong_password_and_unknown_user_look_the_same(app: &TestApp) {
    let (s1, b1) = app.failed_login("nina.nurse", "not-the-password").await;
    let (s2, b2) = app.failed_login("nobody.here", "not-the-password").await;
    assert_eq!(s1, s2);
    let strip = |b: &str| {
        b.split("name=\"csrf\" value=\"")
            .map(|p| p.split_once('"').map(|x| x.1).unwrap_or(p))
            .collect::<String>()
    };
    // Same page apart from the fresh CSRF token and the echoed username.
    assert_eq!(
        strip(&b1).replace("nina.nurse", "X"),
        strip(&b2).replace("nobody.here", "X")
    );
    assert!(b1.contains("do not match"));
    // Both attempts are in the audit trail.
    let n = app.store.count_audit("login.failure").await.unwrap();
    assert_eq!(n, 2);
}
both!(wrong_password_and_unknown_user_look_the_same);

async fn lockout_after_repeated_failures(app: &TestApp) {
    // An API token of the account works, and is used (cached) before the lockout.
    let token = app.user_token("theo.therapist").await;
    let me = |t: String| async move {
        reqwest::Client::new()
            .get(app.url("/api/v1/me"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(me(token.clone()).await, 200);
    for _ in 0..5 {
        app.failed_login("theo.therapist", "wrong-password!").await;
    }
    // The right password is refused while locked.
    assert!(app.login_with("theo.therapist", PW, None).await.is_none());
    // The lockout stops the account's tokens too, at once on this instance.
    assert_eq!(me(token.clone()).await, 401, "a locked account's token");
    // Other accounts are unaffected.
    assert!(app.login_with("nina.nurse", PW, None).await.is_some());
    // When the lockout ends, the token works again.
    app.advance_minutes(16);
    assert_eq!(me(token).await, 200);
}
both!(lockout_after_repeated_failures);

async fn login_logout_and_csrf(app: &TestApp) {
    let s = app.login("dana.frontdesk").await;
    assert_eq!(s.get("/").await.status(), 200);
    // A form without the CSRF token is refused and changes nothing.
    let before = app.count_patients().await;
    let r = s
        .client
        .post(app.url("/patients/new"))
        .form(&[
            ("given_name", "Eve"),
            ("family_name", "Forger"),
            ("date_of_birth", "1990-01-01"),
            ("clinic_id", &app.glendale.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(app.count_patients().await, before);
    // Logging in without the pre-login cookie's token fails too.
    let c = app.client();
    let r = c
        .post(app.url("/login"))
        .form(&[
            ("csrf", "forged"),
            ("username", "dana.frontdesk"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("expired"));
    // Logout ends the session on the server.
    let r = s.post_form("/logout", &[]).await;
    assert_eq!(r.status(), 303);
    let r = s.get("/patients").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
}
both!(login_logout_and_csrf);

async fn cookies_are_hardened_and_pages_not_cached(app: &TestApp) {
    let c = app.client();
    let page = c.get(app.url("/login")).send().await.unwrap();
    let text = page.text().await.unwrap();
    let pre = hidden(&text, "csrf");
    let r = c
        .post(app.url("/login"))
        .form(&[
            ("csrf", pre.as_str()),
            ("username", "nina.nurse"),
            ("password", PW),
        ])
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("sw_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let r = c.get(app.url("/patients")).send().await.unwrap();
    let h = r.headers();
    assert_eq!(h["cache-control"], "no-store");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("x-request-id"));
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("<script>") && !body.contains(" onclick="),
        "no inline script"
    );
}
both!(cookies_are_hardened_and_pages_not_cached);

async fn idle_and_absolute_expiry(app: &TestApp) {
    // Sessions are checked against the store's clock; simulate time by asking
    // for a session with a shorter idle window than has passed.
    let s = app.login("nina.nurse").await;
    assert_eq!(s.get("/").await.status(), 200);
    let uid = app
        .store
        .user_id_by_username("nina.nurse")
        .await
        .unwrap()
        .unwrap();
    // A session whose absolute expiry has passed is refused.
    let token = clinic::actor::random_token(32);
    app.store
        .create_session(
            uid,
            &clinic::actor::secret_hash(&token),
            "x",
            app.now() - 1,
            None,
            ev(),
        )
        .await
        .unwrap();
    let c = app.client();
    let r = c
        .get(app.url("/"))
        .header("cookie", format!("sw_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // A live session is refused once it has been idle longer than the window.
    let live = clinic::actor::random_token(32);
    let h = clinic::actor::secret_hash(&live);
    app.store
        .create_session(uid, &h, "x", app.now() + 3_600_000_000, None, ev())
        .await
        .unwrap();
    let now = app.now();
    assert!(app
        .store
        .session(&h, now, 60_000_000)
        .await
        .unwrap()
        .is_some());
    assert!(app
        .store
        .session(&h, now + 61_000_000, 60_000_000)
        .await
        .unwrap()
        .is_none());
}
both!(idle_and_absolute_expiry);

async fn totp_is_required_when_enabled(app: &TestApp) {
    let uid = app
        .store
        .user_id_by_username("paul.prescriber")
        .await
        .unwrap()
        .unwrap();
    let (secret, _) = clinic::actor::new_totp("paul.prescriber");
    app.store
        .set_totp_secret(uid, Some(&secret), ev())
        .await
        .unwrap();
    assert!(app.login_with("paul.prescriber", PW, None).await.is_none());
    let code = clinic::actor::totp_at(&secret, app.now()).unwrap();
    let wrong: String = code
        .chars()
        .map(|c| {
            if c == '9' {
                '0'
            } else {
                char::from(c as u8 + 1)
            }
        })
        .collect();
    assert!(app
        .login_with("paul.prescriber", PW, Some(&wrong))
        .await
        .is_none());
    assert!(app
        .login_with("paul.prescriber", PW, Some(&code))
        .await
        .is_some());
    // The same code again, within its 30 seconds: a replay, refused.
    assert!(
        app.login_with("paul.prescriber", PW, Some(&code))
            .await
            .is_none(),
        "a two-step code is accepted once"
    );
    assert!(
        app.store.count_audit("login.failure").await.unwrap() >= 2,
        "the replay is recorded as a failed sign-in"
    );
    // The next code works.
    app.advance_minutes(1);
    let next = clinic::actor::totp_at(&secret, app.now()).unwrap();
    assert!(app
        .login_with("paul.prescriber", PW, Some(&next))
        .await
        .is_some());
}
both!(totp_is_required_when_enabled);

async fn password_change_ends_sessions(app: &TestApp) {
    let s = app.login("mona.monitor").await;
    let r = s
        .post_form(
            "/account/password",
            &[
                ("current", "wrong-one-entirely"),
                ("new", "a-new-long-password"),
                ("confirm", "a-new-long-password"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Current password is not right"));
    let r = s
        .post_form(
            "/account/password",
            &[
                ("current", PW),
                ("new", "a-new-long-password"),
                ("confirm", "a-new-long-password"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(s.get("/").await.status(), 303, "old session ended");
    assert!(app.login_with("mona.monitor", PW, None).await.is_none());
    assert!(app
        .login_with("mona.monitor", "a-new-long-password", None)
        .await
        .is_some());
    // Long enough is not enough: common and breached passwords, patterns,
    // the account's names and the password it has now are refused.
    let s = app
        .login_with("mona.monitor", "a-new-long-password", None)
        .await
        .unwrap();
    for (new, why) in [
        ("aaaaaaaaaaaa", "too easy to guess"),
        ("password1234", "too easy to guess"),
        ("mona.monitor-at-work", "must not contain the username"),
        ("a-new-long-password", "must differ from the current one"),
    ] {
        let r = s
            .post_form(
                "/account/password",
                &[
                    ("current", "a-new-long-password"),
                    ("new", new),
                    ("confirm", new),
                ],
            )
            .await;
        assert_eq!(r.status(), 422, "{new}");
        let page = r.text().await.unwrap();
        assert!(page.contains(why), "{new}: {why}");
    }
    // A password replaced earlier is not taken again.
    let fresh = "quiet-harbour-lantern-91";
    let r = s
        .post_form(
            "/account/password",
            &[
                ("current", "a-new-long-password"),
                ("new", fresh),
                ("confirm", fresh),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let s = app.login_with("mona.monitor", fresh, None).await.unwrap();
    let r = s
        .post_form(
            "/account/password",
            &[
                ("current", fresh),
                ("new", "a-new-long-password"),
                ("confirm", "a-new-long-password"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("was used before"));
}
both!(password_change_ends_sessions);

async fn tokens_user_device_and_revoked(app: &TestApp) {
    let (g, _) = app.patient_ids().await;
    let token = app.user_token("nina.nurse").await;
    let c = reqwest::Client::new();
    let r = c
        .get(app.url(&format!("/api/v1/patients/{g}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A device token may only send readings: no patient data.
    let dev = app.device_token(app.glendale, "monitor-1").await;
    let r = c
        .get(app.url(&format!("/api/v1/patients/{g}")))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nor anything else: who it is, the instruments, the protocols, the floor.
    for path in [
        "/api/v1/me".to_string(),
        "/api/v1/instruments".to_string(),
        "/api/v1/protocols".to_string(),
        format!("/api/v1/clinics/{}/floor", app.glendale),
    ] {
        let r = c
            .get(app.url(&path))
            .bearer_auth(&dev)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = c
        .post(app.url("/api/v1/observations"))
        .bearer_auth(&dev)
        .json(&serde_json::json!({"readings": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "it may send readings (an empty batch is named)"
    );
    // Revoked and unknown tokens are refused.
    let t = app
        .store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "monitor-1")
        .unwrap();
    // A revocation made outside this server (the CLI, another instance)
    // applies once the authentication cache entry expires (2 s by default).
    app.store.revoke_token(t.id, ev()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for bad in [dev.as_str(), "sw_nonsense", ""] {
        let r = c
            .get(app.url("/api/v1/me"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // Disabling a user revokes their tokens.
    let uid = app
        .store
        .user_id_by_username("nina.nurse")
        .await
        .unwrap()
        .unwrap();
    app.store.set_user_disabled(uid, true, ev()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = c
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
both!(tokens_user_device_and_revoked);

async fn api_with_a_session_cookie_needs_the_csrf_header(app: &TestApp) {
    let (g, _) = app.patient_ids().await;
    let s = app.login("nina.nurse").await;
    let url = app.url(&format!("/api/v1/patients/{g}"));
    // Reads need no token.
    assert_eq!(s.client.get(&url).send().await.unwrap().status(), 200);
    // A change without the header (what a forged cross-site request sends) is refused.
    let body = serde_json::json!({"pronouns": "forged"});
    let r = s.client.patch(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .client
        .patch(&url)
        .header("x-csrf-token", "wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let p: serde_json::Value = s
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(p["pronouns"], "forged");
    // With the session's token it goes through.
    let r = s
        .client
        .patch(&url)
        .header("x-csrf-token", &s.csrf)
        .json(&serde_json::json!({"pronouns": "she/her"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
both!(api_with_a_session_cookie_needs_the_csrf_header);

/// A tablet handed to a patient shows only the page it was handed over
/// for: no staff navigation, no other chart, no API; when the patient is
/// done it locks, and only the staff member's password takes it back.
async fn a_tablet_handed_to_a_patient_shows_only_their_page(app: &TestApp) {
    let pid = app.patient_ids().await.0;
    let other = app
        .store
        .search_patients(&[app.glendale], "", 5)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id.to_string())
        .find(|p| *p != pid)
        .unwrap();
    let k = app.login("nina.nurse").await;
    let loc = |r: &reqwest::Response| {
        r.headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    // Only a consent or a questionnaire is handed over.
    let r = k
        .post_form("/kiosk/hand-over", &[("path", &format!("/patients/{pid}"))])
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(k.get("/").await.status().as_u16(), 200, "not locked");

    // Nor a patient of another clinic: to this nurse, no such patient.
    let denver = app.patient_ids().await.1;
    let r = k
        .post_form(
            "/kiosk/hand-over",
            &[(
                "path",
                &format!("/patients/{denver}/measures/new?instrument=gad7"),
            )],
        )
        .await;
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(k.get("/").await.status().as_u16(), 200, "not locked");

    let page = format!("/patients/{pid}/measures/new?instrument=gad7");
    let r = k.post_form("/kiosk/hand-over", &[("path", &page)]).await;
    assert_eq!((r.status().as_u16(), loc(&r)), (303, page.clone()));
    let html = k.html(&page).await;
    assert!(html.contains("GAD-7"), "{html}");
    assert!(
        !html.contains("aria-label=\"Main\""),
        "no staff navigation: {html}"
    );
    assert!(!html.contains("Nina Okafor"), "no staff name: {html}");
    // Anything else meets the locked screen; the API answers 403.
    for path in ["/", "/patients", &format!("/patients/{other}"), "/audit"] {
        let r = k.get(path).await;
        assert_eq!(
            (r.status().as_u16(), loc(&r)),
            (303, "/kiosk".into()),
            "{path}"
        );
    }
    let r = k
        .client
        .get(format!("{}/api/v1/patients/{other}", k.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Nor can the patient hand it on to another patient's page.
    let r = k
        .post_form(
            "/kiosk/hand-over",
            &[(
                "path",
                &format!("/patients/{other}/measures/new?instrument=gad7"),
            )],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        loc(&k
            .get(&format!("/patients/{other}/measures/new?instrument=gad7"))
            .await),
        "/kiosk"
    );
    let lock = k.html("/kiosk").await;
    assert!(lock.contains("Please hand the tablet back"), "{lock}");
    assert!(!lock.contains(&other) && !lock.contains("Nina"), "{lock}");
    // A wrong password leaves it locked.
    let r = k
        .post_form("/kiosk/take-back", &[("password", "guess")])
        .await;
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(loc(&k.get("/patients").await), "/kiosk");
    let r = k.post_form("/kiosk/take-back", &[("password", PW)]).await;
    assert_eq!(
        (r.status().as_u16(), loc(&r)),
        (303, format!("/patients/{pid}/measures"))
    );
    assert_eq!(k.get("/patients").await.status().as_u16(), 200);
    app.store.audit_flush().await;
    let events = app
        .store
        .audit_events(&store::audit::AuditFilter {
            clinics: vec![app.glendale.to_string()],
            include_orgwide: true,
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    let of = |a: &str| {
        events
            .iter()
            .filter(|e| e.action == a)
            .map(|e| e.outcome.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(of("session.hand_over"), vec!["ok"]);
    let mut back = of("session.take_back");
    back.sort();
    assert_eq!(back, vec!["denied", "ok"]);
}

both!(a_tablet_handed_to_a_patient_shows_only_their_page);
