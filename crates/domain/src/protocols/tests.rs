//! Protocol files: the shipped ones load; broken ones are refused with the
//! field named.

use super::*;

const IV: &str = include_str!("../../protocols/iv.toml");

fn errors(text: &str) -> Vec<FieldError> {
    Protocol::parse("x.toml", text).expect_err("refused").errors
}

fn fields(text: &str) -> Vec<String> {
    errors(text).into_iter().map(|e| e.field).collect()
}

#[test]
fn shipped_protocols_load() {
    let p = Protocols::load(&[]).unwrap();
    let ids: Vec<&str> = p.all_current().iter().map(|x| x.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "im-injection",
            "intranasal",
            "iv-infusion",
            "sc-injection",
            "sublingual"
        ]
    );
    let iv = p.current("iv-infusion").unwrap();
    assert_eq!(iv.route, Route::Iv);
    assert_eq!(iv.dose.start, 0.5);
    assert_eq!(iv.limits.sbp_max, 180);
    assert_eq!(iv.pre_dose.sbp_below, 160);
    assert_eq!(iv.discharge.aldrete_min, 9);
    assert_eq!(iv.hash.len(), 64);
}

#[test]
fn a_dose_above_the_safe_maximum_is_refused() {
    let e = errors(&IV.replace("max = 0.75", "max = 1.5"));
    assert_eq!(e[0].field, "dose.max");
    assert!(
        e[0].message
            .contains("above the safe maximum for IV infusion (1 mg/kg)"),
        "{}",
        e[0].message
    );
    // Fixed-mg routes have their own ceiling.
    let nasal = include_str!("../../protocols/intranasal.toml").replace("max = 84", "max = 196");
    assert_eq!(fields(&nasal), ["dose.max"]);
    // And the unit must be the route's.
    assert!(fields(&IV.replace("unit = \"mg_per_kg\"", "unit = \"mg\""))
        .contains(&"dose.unit".to_string()));
}

#[test]
fn missing_overlapping_and_negative_values_are_named() {
    assert_eq!(
        fields(&IV.replace("start = 0.5", "start = 0.9")),
        ["dose.start"]
    );
    assert_eq!(
        fields(&IV.replace("hr_max = 120", "hr_max = 40")),
        ["limits.hr_min"]
    );
    assert_eq!(
        fields(&IV.replace("rr_min = 10", "rr_min = 30")),
        ["limits.rr_min"]
    );
    assert_eq!(
        fields(&IV.replace("moaas_stop_at = 1", "moaas_stop_at = 4")),
        ["limits.moaas_stop_at"]
    );
    assert_eq!(
        fields(&IV.replace("interval_minutes = 10", "interval_minutes = 0")),
        ["monitoring.interval_minutes"]
    );
    assert_eq!(
        fields(&IV.replace("sbp_max = 180", "sbp_max = 150")),
        ["limits.sbp_max"]
    );
    // A negative number does not even parse as minutes.
    let e = errors(&IV.replace("interval_minutes = 10", "interval_minutes = -5"));
    assert!(
        e[0].message.contains("invalid value") || e[0].message.contains("-5"),
        "{e:?}"
    );
    // A missing section and an unknown field name themselves.
    let no_limits = IV.split("[limits]").next().unwrap().to_string()
        + "[discharge]\naldrete_min = 9\nrecovery_minutes_min = 30\nescort_required = true\n";
    assert_eq!(fields(&no_limits), ["limits"]);
    assert_eq!(
        fields(&IV.replace("[monitoring]", "[monitoring]\nbeeps = true")),
        ["beeps"]
    );
    // An infusion without its length; a checklist without consent.
    assert_eq!(
        fields(&IV.replace("administration_minutes = 40", "administration_minutes = 0")),
        ["administration_minutes"]
    );
    let e = errors(&IV.replace("\"eligibility\", \"consent\", ", ""));
    assert!(e.iter().any(|x| x.message.contains("\"consent\"")), "{e:?}");
    assert_eq!(
        fields(&IV.replace("\"fasting\"", "\"vibes\"")),
        ["checklist[6]", "checklist"]
    );
    // Home use is for sublingual or oral only.
    assert_eq!(
        fields(&IV.replace("courses =", "home_use = true\ncourses =")),
        ["home_use"]
    );
}

#[test]
fn every_problem_at_once_and_versions_never_change() {
    let bad = IV
        .replace("start = 0.5", "start = 0.9")
        .replace("hr_max = 120", "hr_max = 40")
        .replace("aldrete_min = 9", "aldrete_min = 12");
    assert_eq!(
        fields(&bad),
        ["dose.start", "limits.hr_min", "discharge.aldrete_min"]
    );
    let v3 = IV
        .replace("version = 1", "version = 3")
        .replace("start = 0.5", "start = 0.4");
    let p = Protocols::load(&[("iv3.toml".into(), v3)]).unwrap();
    assert_eq!(p.current("iv-infusion").unwrap().version, 3);
    assert_eq!(p.get("iv-infusion", 1).unwrap().dose.start, 0.5);
    assert_eq!(p.versions_of("iv-infusion").len(), 3);
    // The pre-session instruments and their checklist item go together.
    let asks = IV.replace(
        "\"suicide_risk\"]",
        "\"suicide_risk\", \"pre_session_instruments\"]",
    );
    assert_eq!(fields(&asks), ["pre_session_instruments"]);
    let names = IV.replace(
        "courses =",
        "pre_session_instruments = [\"GAD 7\"]\ncourses =",
    );
    assert_eq!(fields(&names), ["checklist", "pre_session_instruments[0]"]);
    let changed = IV.replace("start = 0.5", "start = 0.4");
    let err = Protocols::load(&[("iv.toml".into(), changed)]).unwrap_err();
    assert!(err.to_string().contains("new version"), "{err}");
}

/// Case 4 of the safety review: a version without fasting, escort or second
/// check, with Aldrete 0 and 50 mg rounding, is refused whoever approves it,
/// each floor naming its field. Every floor is tried on every shipped route.
#[test]
fn safety_floors_hold_whoever_approves() {
    let shipped: Vec<(&str, &str)> = BUILTIN.to_vec();
    for (file, text) in &shipped {
        let p = Protocol::parse(file, text).unwrap();
        // Each change alone, with the field it must name.
        let mut cases: Vec<(String, &str)> = vec![
            (text.replace("\"fasting\", ", ""), "checklist"),
            (text.replace("\"escort\", ", ""), "checklist"),
            (
                text.replace("escort_required = true", "escort_required = false"),
                "discharge.escort_required",
            ),
            (
                text.replace(
                    &format!("aldrete_min = {}", p.discharge.aldrete_min),
                    "aldrete_min = 0",
                ),
                "discharge.aldrete_min",
            ),
            (
                text.replace(
                    "min_hours_between_doses = 20",
                    "min_hours_between_doses = 4",
                ),
                "min_hours_between_doses",
            ),
            (
                text.replace(
                    &format!("fasting_solids_hours = {}", p.pre_dose.fasting_solids_hours),
                    "fasting_solids_hours = 1",
                ),
                "pre_dose.fasting_solids_hours",
            ),
            (
                text.replace("spo2_stop_below = 88", "spo2_stop_below = 70"),
                "limits.spo2_stop_below",
            ),
            (
                text.replace("sbp_stop_above = 200", "sbp_stop_above = 250"),
                "limits.sbp_stop_above",
            ),
            (
                text.replace("hr_stop_below = 40", "hr_stop_below = 20"),
                "limits.hr_stop_below",
            ),
            (
                text.replace("rr_stop_below = 8", "rr_stop_below = 2"),
                "limits.rr_stop_below",
            ),
            (
                text.replace("rr_stop_above = 30", "rr_stop_above = 20"),
                "limits.rr_stop_above",
            ),
        ];
        if matches!(p.route, Route::Iv | Route::Im) {
            cases.push((
                text.replace("second_check = true", "second_check = false"),
                "preparation.second_check",
            ));
        }
        if p.route == Route::Iv {
            cases.push((
                text.replace("recovery_minutes_min = 30", "recovery_minutes_min = 10"),
                "discharge.recovery_minutes_min",
            ));
        }
        if p.dose.unit == DoseUnit::MgPerKg {
            cases.push((
                text.replace("round_mg = 0.1", "round_mg = 50"),
                "preparation.round_mg",
            ));
            cases.push((
                text.replace("round_mg = 0.1", "round_mg = 1"),
                "preparation.round_mg",
            ));
        }
        for (changed, field) in cases {
            assert_ne!(
                &changed, text,
                "{file}: the change to {field} did not apply"
            );
            let got = fields(&changed);
            assert!(
                got.iter().any(|f| f == field),
                "{file}: expected {field} refused, got {got:?}"
            );
        }
    }
}

#[test]
fn an_organisation_sees_its_own_versions_and_the_shared_ones_only() {
    let v3 = IV
        .replace("version = 1", "version = 3")
        .replace("start = 0.5", "start = 0.4");
    let v4 = IV
        .replace("version = 1", "version = 4")
        .replace("start = 0.5", "start = 0.3");
    let p = Protocols::load_with_stored(
        &[],
        &[
            ("a.toml".into(), v3, "org-a".into()),
            ("b.toml".into(), v4, "org-b".into()),
        ],
    )
    .unwrap();
    assert_eq!(p.current_for("org-a", "iv-infusion").unwrap().version, 3);
    assert_eq!(p.current_for("org-b", "iv-infusion").unwrap().version, 4);
    // An organisation with none of its own gets the shipped version 2.
    assert_eq!(p.current_for("org-c", "iv-infusion").unwrap().version, 2);
    assert_eq!(p.highest_version("iv-infusion"), Some(4));
    assert!(p
        .all_current_for("org-a")
        .iter()
        .all(|x| x.org.as_deref().is_none_or(|o| o == "org-a")));
}
