//! The staff pages: register, search, chart, edit, tenancy, clinic settings, staff.

use crate::both;
use crate::helpers::*;

async fn register_search_open_and_other_clinic_404(app: &TestApp) {
    let s = app.login("dana.frontdesk").await;
    let g = app.glendale.to_string();
    let r = s
        .post_form(
            "/patients/new",
            &[
                ("clinic_id", &g),
                ("given_name", "Rosa"),
                ("family_name", "Delgado-Test"),
                ("date_of_birth", "1979-06-30"),
                ("phone", "(602) 555-0123"),
                ("escort_name", "Luis Delgado"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let chart = r.headers()["location"].to_str().unwrap().to_string();
    let page = s.get(&chart).await.text().await.unwrap();
    assert!(page.contains("Delgado-Test, Rosa") && page.contains("Luis Delgado"));
    // Found by name, by date of birth, by phone however it is written.
    for q in [
        "delgado-test",
        "1979-06-30",
        "602-555-0123",
        "rosa%20delgado",
    ] {
        let page = s
            .get(&format!("/patients?q={q}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(&chart), "search {q}");
    }
    // The htmx partial answers htmx only.
    let r = s
        .client
        .get(app.url("/patients/results?q=rosa"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("Delgado-Test") && !body.contains("<html"));
    assert_eq!(s.get("/patients/results?q=rosa").await.status(), 303);
    // Denver's front desk gets 404, and so does an id that does not exist.
    let d = app.login("devon.frontdesk").await;
    assert_eq!(d.get(&chart).await.status(), 404);
    assert_eq!(
        d.get("/patients/0190b5f0-c3f0-7d4c-9b1e-2a3f4c5d6e7f")
            .await
            .status(),
        404
    );
    assert_eq!(d.get("/patients/not-an-id").await.status(), 404);
    let page = d
        .get("/patients?q=delgado-test")
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Delgado-Test"));
}
both!(register_search_open_and_other_clinic_404);

async fn form_errors_rerender_and_write_nothing(app: &TestApp) {
    let s = app.login("dana.frontdesk").await;
    let before = app.count_patients().await;
    let r = s
        .post_form(
            "/patients/new",
            &[
                ("clinic_id", &app.glendale.to_string()),
                ("given_name", ""),
                ("family_name", "Ok"),
                ("date_of_birth", "2031-01-01"),
                ("email", "nope"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("Given name is required"));
    assert!(page.contains("Date of birth must not be in the future"));
    assert!(page.contains("E-mail must be an e-mail address"));
    assert!(page.contains("value=\"Ok\""), "typed values are kept");
    // A clinic the user has no role in is refused as a field error.
    let r = s
        .post_form(
            "/patients/new",
            &[
                ("clinic_id", &app.denver.to_string()),
                ("given_name", "A"),
                ("family_name", "B"),
                ("date_of_birth", "1990-01-01"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(app.count_patients().await, before);
}
both!(form_errors_rerender_and_write_nothing);

async fn edit_patient_and_roles_that_cannot(app: &TestApp) {
    let (g, _) = app.patient_ids().await;
    let n = app.login("nina.nurse").await;
    let page = n
        .get(&format!("/patients/{g}/edit"))
        .await
        .text()
        .await
        .unwrap();
    let given = hidden_input_value(&page, "given_name");
    let family = hidden_input_value(&page, "family_name");
    let dob = hidden_input_value(&page, "date_of_birth");
    let r = n
        .post_form(
            &format!("/patients/{g}/edit"),
            &[
                ("given_name", &given),
                ("family_name", &family),
                ("date_of_birth", &dob),
                ("escort_name", "New Escort"),
                ("escort_phone", "602 555 0100"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(n
        .get(&format!("/patients/{g}"))
        .await
        .text()
        .await
        .unwrap()
        .contains("New Escort"));
    // A therapist reads but may not edit.
    let t = app.login("theo.therapist").await;
    assert_eq!(t.get(&format!("/patients/{g}")).await.status(), 200);
    assert_eq!(t.get(&format!("/patients/{g}/edit")).await.status(), 403);
    let r = t
        .post_form(
            &format!("/patients/{g}/edit"),
            &[
                ("given_name", "X"),
                ("family_name", "Y"),
                ("date_of_birth", "1990-01-01"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(!t
        .get(&format!("/patients/{g}"))
        .await
        .text()
        .await
        .unwrap()
        .contains(">X Y<"));
}
both!(edit_patient_and_roles_that_cannot);

pub fn hidden_input_value(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" type=\"");
    let i = html.find(&needle).unwrap();
    let rest = &html[i..];
    let v = rest.find("value=\"").unwrap() + 7;
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

async fn clinic_settings_are_validated_and_saved(app: &TestApp) {
    let a = app.login("ada.admin").await;
    let path = format!("/admin/clinics/{}", app.glendale);
    let base = [
        ("name", "Stillwater Glendale"),
        ("address_line1", "18400 N 51st Ave"),
        ("city", "Glendale"),
        ("region", "AZ"),
        ("postal_code", "85308"),
        ("country", "US"),
        ("phone", "(602) 555-0142"),
        ("time_zone", "Mars/Olympus"),
        ("open_mon", "16:30"),
        ("close_mon", "07:00"),
        ("open_tue", "07:00"),
        ("close_tue", ""),
    ];
    let r = a.post_form(&path, &base).await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("not a known IANA time zone"));
    assert!(page.contains("closing time must be after opening time"));
    assert!(page.contains("needs both an opening and a closing time"));
    let mut good = base.to_vec();
    good[7] = ("time_zone", "America/Phoenix");
    good[8] = ("open_mon", "07:00");
    good[9] = ("close_mon", "18:00");
    good[11] = ("close_tue", "16:30");
    assert_eq!(a.post_form(&path, &good).await.status(), 303);
    let k = app.store.clinic(app.glendale).await.unwrap();
    assert_eq!(k.settings.hours.len(), 2);
    assert_eq!(k.settings.hours[0].closes(), "18:00");
    // A closure; the same date twice is refused with a message.
    assert_eq!(
        a.post_form(
            &format!("{path}/closures"),
            &[("closed_on", "2027-07-04"), ("reason", "Independence Day")]
        )
        .await
        .status(),
        303
    );
    let r = a
        .post_form(
            &format!("{path}/closures"),
            &[("closed_on", "2027-07-04"), ("reason", "Again")],
        )
        .await;
    let t = r.text().await.unwrap();
    assert!(t.contains("already closed"), "{t}");
    let r = a
        .post_form(
            &format!("{path}/closures"),
            &[("closed_on", "2027-02-30"), ("reason", "Nope")],
        )
        .await;
    assert_eq!(r.status(), 422);
    // Only admins reach clinic settings.
    let n = app.login("nina.nurse").await;
    assert_eq!(n.get(&path).await.status(), 403);
}
both!(clinic_settings_are_validated_and_saved);

async fn admin_adds_staff_and_grants_roles(app: &TestApp) {
    let a = app.login("ada.admin").await;
    let g = app.glendale.to_string();
    let r = a
        .post_form(
            "/admin/staff",
            &[
                ("display_name", "Kim Park"),
                ("username", "Kim Park"),
                ("password", "short"),
                ("clinic_id", &g),
                ("role", "nurse"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let page = r.text().await.unwrap();
    assert!(page.contains("may contain only letters"));
    assert!(page.contains("at least 12 characters"));
    let r = a
        .post_form(
            "/admin/staff",
            &[
                ("display_name", "Kim Park"),
                ("username", "kim.park"),
                ("password", "a-long-enough-pass"),
                ("clinic_id", &g),
                ("role", "nurse"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = a
        .post_form(
            "/admin/staff",
            &[
                ("display_name", "Kim Two"),
                ("username", "kim.park"),
                ("password", "a-long-enough-pass"),
                ("clinic_id", &g),
                ("role", "nurse"),
            ],
        )
        .await;
    assert!(r.text().await.unwrap().contains("already taken"));
    let k = app
        .login_with("kim.park", "a-long-enough-pass", None)
        .await
        .unwrap();
    assert_eq!(k.get("/patients").await.status(), 200);
    // Revoke the role: the same session loses access at once.
    let uid = app
        .store
        .user_id_by_username("kim.park")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a.post_form(
            &format!("/admin/staff/{uid}/revoke"),
            &[("clinic_id", &g), ("role", "nurse")]
        )
        .await
        .status(),
        303
    );
    assert_eq!(k.get("/patients").await.status(), 403);
    // Disable: sessions end.
    assert_eq!(
        a.post_form(&format!("/admin/staff/{uid}/disable"), &[])
            .await
            .status(),
        303
    );
    assert_eq!(k.get("/").await.status(), 303);
    // Role changes are in the audit trail.
    assert!(app.store.count_audit("role.revoke").await.unwrap() >= 1);
    // An admin can neither take away their own admin role nor disable their
    // own account: the page says why, and nothing changes.
    let ada = app
        .store
        .user_id_by_username("ada.admin")
        .await
        .unwrap()
        .unwrap();
    let revokes = app.store.count_audit("role.revoke").await.unwrap();
    let r = a
        .post_form(
            &format!("/admin/staff/{ada}/revoke"),
            &[("clinic_id", &g), ("role", "clinic_admin")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You cannot remove your own admin role"));
    assert_eq!(app.store.count_audit("role.revoke").await.unwrap(), revokes);
    let r = a
        .post_form(&format!("/admin/staff/{ada}/disable"), &[])
        .await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You cannot disable your own account"));
    assert_eq!(
        a.get("/admin/staff").await.status(),
        200,
        "still an admin, still signed in"
    );
}
both!(admin_adds_staff_and_grants_roles);

/// Every link and htmx fragment a member of staff can reach from the home
/// page, and a patient from the portal's, on the whole demo (today's floor,
/// billing, the Schedule III record ...), opens for them: a tab or link that
/// answers "not allowed" or "not found" is a dead end (the chart showed
/// clinical tabs to the front desk, the task list linked therapists to leads
/// they may not read). The benchmark's crawler follows the links, as
/// `bench --only clinic` does.
async fn every_link_a_role_sees_opens(app: &TestApp) {
    stillwater::demo::load_rest(
        &app.store,
        &domain::protocols::Protocols::builtin(),
        &domain::instruments::Registry::builtin(),
    )
    .await
    .unwrap();
    let mut accounts = stillwater::bench_clinic::sign_in_staff(&app.store)
        .await
        .unwrap();
    let patients = stillwater::bench_clinic::sign_in_patients(&app.store)
        .await
        .unwrap();
    assert_eq!(patients.len(), 2, "a patient in each clinic's portal");
    accounts.extend(patients);
    let mut opened = 0;
    let mut dead = vec![];
    for a in &accounts {
        let (pages, other) = stillwater::bench_clinic::crawl(app.addr, a).await.unwrap();
        opened += pages.len();
        let user = &a.name;
        // Redirects are links too (`/schedule` goes to the caller's clinic).
        dead.extend(
            other
                .into_iter()
                .filter(|(_, status)| !(300..400).contains(status))
                .map(|(kind, status)| format!("{user}: {status} {kind}")),
        );
    }
    assert!(dead.is_empty(), "links that do not open: {dead:#?}");
    // The crawl reached the product, not only the home pages.
    assert!(opened > 500, "only {opened} pages opened");
}
both!(every_link_a_role_sees_opens);
