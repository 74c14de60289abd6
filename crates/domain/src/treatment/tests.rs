//! Tests that try to break the treatment-day rules: the maths round-trips
//! for any weight, dose and strength in range; a dose cannot start with the
//! checklist incomplete; readings no patient can have are refused; an alert
//! closes only with a response; discharge waits for its criteria.

use proptest::prelude::*;

use super::*;
use crate::protocols::{Protocol, Protocols, Route};

fn protocol(id: &str) -> Protocol {
    Protocols::builtin().current(id).unwrap().as_ref().clone()
}

const MIN: i64 = 60_000_000;

#[test]
fn an_iv_order_is_worked_out_to_the_pump_rate() {
    let p = protocol("iv-infusion");
    let m = order(&p, 0.5, Some(70.0)).unwrap();
    assert_eq!(m.mg, 35.0);
    assert_eq!(m.drug_ml, 3.5);
    assert_eq!(m.total_ml, 103.5);
    assert_eq!(m.minutes, 40);
    assert_eq!(m.rate_ml_h, Some(155.3));
    assert!(m.second_check);
    assert_eq!(
        m.summary(),
        "0.5 mg/kg x 70 kg = 35 mg; 3.5 mL drug + 100 mL diluent = 103.5 mL at 155.3 mL/h over 40 min"
    );
    // 0.5 mg/kg x 81.3 kg = 40.65 mg, rounded to the protocol's 1 mg.
    let m = order(&p, 0.5, Some(81.3)).unwrap();
    assert_eq!(m.mg, 41.0);
    assert_eq!(m.mg_per_kg, Some(0.504));
}

#[test]
fn doses_outside_the_range_or_without_a_weight_are_refused() {
    let p = protocol("iv-infusion");
    let e = order(&p, 0.8, Some(70.0)).unwrap_err();
    assert_eq!(e[0].field, "dose");
    assert!(
        e[0].message
            .contains("outside the protocol's range 0.1-0.75"),
        "{e:?}"
    );
    assert_eq!(order(&p, 0.05, Some(70.0)).unwrap_err()[0].field, "dose");
    assert_eq!(
        order(&p, f64::NAN, Some(70.0)).unwrap_err()[0].field,
        "dose"
    );
    assert_eq!(order(&p, -0.5, Some(70.0)).unwrap_err()[0].field, "dose");
    assert_eq!(order(&p, 0.5, None).unwrap_err()[0].field, "weight_kg");
    assert_eq!(
        order(&p, 0.5, Some(12.0)).unwrap_err()[0].field,
        "weight_kg"
    );
    assert_eq!(
        order(&p, 0.5, Some(f64::INFINITY)).unwrap_err()[0].field,
        "weight_kg"
    );
}

#[test]
fn sprays_and_troches_are_whole_numbers() {
    let p = protocol("intranasal");
    let m = order(&p, 56.0, None).unwrap();
    assert_eq!((m.units, m.rate_ml_h), (Some(4), None));
    assert!(m.summary().ends_with("4 x 14 mg sprays"), "{}", m.summary());
    let e = order(&p, 50.0, None).unwrap_err();
    assert!(
        e[0].message.contains("not a whole number of 14 mg"),
        "{e:?}"
    );
    let s = protocol("sublingual");
    assert_eq!(order(&s, 100.0, None).unwrap().units, Some(4));
    let im = protocol("im-injection");
    let m = order(&im, 0.5, Some(64.0)).unwrap();
    assert_eq!((m.mg, m.drug_ml, m.rate_ml_h), (32.0, 0.64, None));
}

proptest! {
    /// mg, mL and mL/h round-trip within the rounding rule for any weight,
    /// dose and strength in range.
    #[test]
    fn maths_round_trips(
        weight in 30.0f64..300.0,
        dose in 0.1f64..=0.75,
        conc in prop::sample::select(vec![10.0, 50.0, 100.0]),
        round in prop::sample::select(vec![0.5, 1.0, 2.5, 5.0]),
        diluent in prop::sample::select(vec![50.0, 100.0, 250.0]),
        minutes in 20u32..=120,
    ) {
        let mut p = protocol("iv-infusion");
        p.preparation.concentration_mg_per_ml = conc;
        p.preparation.round_mg = round;
        p.preparation.diluent_ml = diluent;
        p.administration_minutes = minutes;
        let m = order(&p, dose, Some(weight)).unwrap();
        // mg is the dose times the weight, to the nearest rounding step.
        prop_assert!((m.mg - dose * weight).abs() <= round / 2.0 + 1e-6);
        prop_assert!((m.mg / round - (m.mg / round).round()).abs() < 1e-6);
        // mL at the drawn strength gives the mg back to the hundredth of a mL.
        prop_assert!((m.drug_ml * conc - m.mg).abs() <= dosing::ML_STEP / 2.0 * conc + 1e-6);
        prop_assert!((m.total_ml - m.drug_ml - diluent).abs() < 1e-6);
        // The pump at its rate for the infusion's time runs the bag to the tenth of a mL/h.
        let rate = m.rate_ml_h.unwrap();
        let ran = rate * minutes as f64 / 60.0;
        prop_assert!((ran - m.total_ml).abs() <= dosing::RATE_STEP / 2.0 * minutes as f64 / 60.0 + 1e-6);
        // Running the pump for the whole time delivers the ordered mg.
        let events = [
            AdminEvent { kind: AdminKind::Start, at: 0, rate_ml_h: Some(rate), reason: None },
            AdminEvent { kind: AdminKind::Stop, at: minutes as i64 * MIN, rate_ml_h: None, reason: None },
        ];
        let got = delivered_mg(&m, &events, minutes as i64 * MIN);
        prop_assert!((got - m.mg).abs() <= (m.mg * 0.01).max(0.1), "{got} vs {}", m.mg);
    }

    /// No weight or dose outside the range gets an order.
    #[test]
    fn outside_the_range_never_orders(weight in 30.0f64..300.0, dose in 0.76f64..50.0) {
        let p = protocol("iv-infusion");
        prop_assert!(order(&p, dose, Some(weight)).is_err());
    }
}

fn known_ok() -> Known {
    Known {
        eligibility: None,
        consent: None,
        baseline: Some(Vitals {
            hr: Some(72),
            sbp: Some(128),
            dbp: Some(82),
            spo2: Some(98),
            ..Vitals::default()
        }),
        weight_today: true,
        instruments_due: vec![],
    }
}

fn full() -> Checklist {
    Checklist {
        identity_confirmed: Some(true),
        weight_kg: Some(70.0),
        weight_measured_at: Some(0),
        pregnancy: Some(Pregnancy::NotApplicable),
        fasting_confirmed: Some(true),
        escort_name: Some("Sam Ortiz".into()),
        escort_phone: Some("602 555 0142".into()),
        no_alcohol: Some(true),
        medications_reviewed: Some(true),
        medication_changes: None,
        suicide_risk: Some(RiskScreen::Negative),
        vitals_override: None,
        suicide_risk_override: None,
    }
}

#[test]
fn the_checklist_is_complete_only_with_every_item() {
    let p = protocol("iv-infusion");
    let items = evaluate(&p, &full(), &known_ok());
    assert_eq!(items.len(), 12);
    assert!(incomplete(&items).is_empty(), "{:?}", incomplete(&items));
    // The GAD-7 not answered today keeps it from starting, and says what to do.
    let due = Known {
        instruments_due: vec!["GAD-7".into()],
        ..known_ok()
    };
    let left = incomplete(&evaluate(&p, &full(), &due));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("answers GAD-7 today"), "{left:?}");
    // Version 1 of the protocol (records made under it) did not ask.
    let v1 = Protocols::builtin()
        .get("iv-infusion", 1)
        .unwrap()
        .as_ref()
        .clone();
    assert!(incomplete(&evaluate(&v1, &full(), &due)).is_empty());
    // Each missing item alone keeps the dose from starting.
    let cases: Vec<(&str, Checklist, Known)> = vec![
        (
            "identity",
            Checklist {
                identity_confirmed: None,
                ..full()
            },
            known_ok(),
        ),
        (
            "weight",
            Checklist {
                weight_kg: None,
                ..full()
            },
            known_ok(),
        ),
        (
            "stale weight",
            full(),
            Known {
                weight_today: false,
                instruments_due: vec![],
                ..known_ok()
            },
        ),
        (
            "pregnant",
            Checklist {
                pregnancy: Some(Pregnancy::Positive),
                ..full()
            },
            known_ok(),
        ),
        (
            "fasting",
            Checklist {
                fasting_confirmed: Some(false),
                ..full()
            },
            known_ok(),
        ),
        (
            "escort phone",
            Checklist {
                escort_phone: Some(" ".into()),
                ..full()
            },
            known_ok(),
        ),
        (
            "alcohol",
            Checklist {
                no_alcohol: None,
                ..full()
            },
            known_ok(),
        ),
        (
            "medicines",
            Checklist {
                medications_reviewed: None,
                ..full()
            },
            known_ok(),
        ),
        (
            "risk",
            Checklist {
                suicide_risk: Some(RiskScreen::Positive),
                ..full()
            },
            known_ok(),
        ),
        (
            "eligibility",
            full(),
            Known {
                eligibility: Some("not yet decided".into()),
                ..known_ok()
            },
        ),
        (
            "consent",
            full(),
            Known {
                consent: Some("consent withdrawn".into()),
                ..known_ok()
            },
        ),
        (
            "no baseline",
            full(),
            Known {
                baseline: None,
                ..known_ok()
            },
        ),
        (
            "high BP",
            full(),
            Known {
                baseline: Some(Vitals {
                    sbp: Some(164),
                    dbp: Some(90),
                    ..known_ok().baseline.unwrap()
                }),
                ..known_ok()
            },
        ),
    ];
    for (name, c, k) in cases {
        let left = incomplete(&evaluate(&p, &c, &k));
        assert_eq!(left.len(), 1, "{name}: {left:?}");
    }
    // A prescriber's override lets high pressure through, never a missing baseline.
    let o = Override {
        reason: "white-coat, 152 on recheck".into(),
        by: "u".into(),
        at: 0,
    };
    let high = Known {
        baseline: Some(Vitals {
            sbp: Some(164),
            dbp: Some(90),
            ..known_ok().baseline.unwrap()
        }),
        ..known_ok()
    };
    let c = Checklist {
        vitals_override: Some(o.clone()),
        ..full()
    };
    assert!(incomplete(&evaluate(&p, &c, &high)).is_empty());
    assert_eq!(
        incomplete(&evaluate(
            &p,
            &c,
            &Known {
                baseline: None,
                ..known_ok()
            }
        ))
        .len(),
        1
    );
    let c = Checklist {
        suicide_risk: Some(RiskScreen::Positive),
        suicide_risk_override: Some(o),
        ..full()
    };
    assert!(incomplete(&evaluate(&p, &c, &known_ok())).is_empty());
}

#[test]
fn merging_keeps_earlier_answers_and_the_weight_with_its_time() {
    let a = Checklist {
        weight_kg: Some(70.0),
        weight_measured_at: Some(5),
        ..Checklist::default()
    };
    let b = Checklist {
        identity_confirmed: Some(true),
        ..Checklist::default()
    };
    let m = a.merged_with(&b);
    assert_eq!(
        (m.weight_kg, m.weight_measured_at, m.identity_confirmed),
        (Some(70.0), Some(5), Some(true))
    );
    let c = Checklist {
        weight_kg: Some(71.0),
        weight_measured_at: Some(9),
        ..Checklist::default()
    };
    assert_eq!(m.merged_with(&c).weight_measured_at, Some(9));
    let bad = Checklist {
        weight_kg: Some(7.0),
        escort_phone: Some("12".into()),
        ..Checklist::default()
    };
    let fields: Vec<String> = bad.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["weight_kg", "escort_phone"]);
}

#[test]
fn impossible_readings_are_named() {
    let r = Vitals {
        sbp: Some(400),
        dbp: Some(80),
        spo2: Some(120),
        hr: Some(-5),
        ..Vitals::default()
    };
    let e = r.validate("");
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["hr", "sbp", "spo2"]);
    assert!(
        e[1].message
            .contains("400 is not a possible reading (possible: 50-260 mmHg)"),
        "{e:?}"
    );
    assert_eq!(Vitals::default().validate("r[0].")[0].field, "r[0].values");
    let e = Vitals {
        sbp: Some(80),
        dbp: Some(90),
        ..Vitals::default()
    }
    .validate("");
    assert_eq!(e[0].field, "dbp");
    let e = Vitals {
        sbp: Some(120),
        ..Vitals::default()
    }
    .validate("");
    assert_eq!(e[0].field, "sbp");
    let e = Vitals {
        temp_c: Some(f64::NAN),
        ..Vitals::default()
    }
    .validate("");
    assert_eq!(e[0].field, "temp_c");
}

#[test]
fn readings_outside_the_limits_raise_findings() {
    let p = protocol("iv-infusion");
    let base = known_ok().baseline.unwrap();
    let ok = Vitals {
        sbp: Some(150),
        dbp: Some(90),
        hr: Some(88),
        spo2: Some(96),
        rr: Some(14),
        moaas: Some(4),
        ..Vitals::default()
    };
    assert!(check(&p.limits, Some(&base), &ok).is_empty());
    let high = Vitals {
        sbp: Some(186),
        dbp: Some(112),
        ..ok
    };
    let f = check(&p.limits, Some(&base), &high);
    assert_eq!(
        f.iter()
            .map(|f| (f.parameter, f.severity))
            .collect::<Vec<_>>(),
        [("sbp", Severity::Pause), ("dbp", Severity::Pause)]
    );
    let rise = Vitals {
        sbp: Some(170),
        ..ok
    };
    assert_eq!(
        check(&p.limits, Some(&base), &rise)[0].severity,
        Severity::Warn
    );
    assert!(check(&p.limits, None, &rise).is_empty());
    let deep = Vitals {
        moaas: Some(1),
        ..ok
    };
    assert_eq!(
        check(&p.limits, Some(&base), &deep)[0].severity,
        Severity::Stop
    );
    let f = check(
        &p.limits,
        Some(&base),
        &Vitals {
            spo2: Some(89),
            rr: Some(8),
            hr: Some(45),
            ..ok
        },
    );
    assert_eq!(f.len(), 3);
}

#[test]
fn the_timeline_follows_the_pump() {
    let p = protocol("iv-infusion");
    let m = order(&p, 0.5, Some(70.0)).unwrap();
    let ev = |kind, at, rate: Option<f64>, reason: Option<&str>| AdminEvent {
        kind,
        at,
        rate_ml_h: rate,
        reason: reason.map(String::from),
    };
    let mut t: Vec<AdminEvent> = Vec::new();
    // Nothing but a start first; a bolus "given" is refused for an infusion.
    assert_eq!(
        next_event(&m, &t, ev(AdminKind::Pause, 0, None, Some("x")))
            .unwrap_err()
            .field,
        "kind"
    );
    assert_eq!(
        next_event(&m, &t, ev(AdminKind::Given, 0, None, None))
            .unwrap_err()
            .field,
        "kind"
    );
    // The start takes the ordered rate; a faster one is refused.
    assert_eq!(
        next_event(&m, &t, ev(AdminKind::Start, 0, Some(400.0), None))
            .unwrap_err()
            .field,
        "rate_ml_h"
    );
    t.push(next_event(&m, &t, ev(AdminKind::Start, 0, None, None)).unwrap());
    assert_eq!(t[0].rate_ml_h, Some(155.3));
    // A pause needs its reason and cannot go back in time.
    assert_eq!(
        next_event(&m, &t, ev(AdminKind::Pause, 10 * MIN, None, None))
            .unwrap_err()
            .field,
        "reason"
    );
    assert_eq!(
        next_event(&m, &t, ev(AdminKind::Pause, -1, None, Some("BP")))
            .unwrap_err()
            .field,
        "at"
    );
    t.push(
        next_event(
            &m,
            &t,
            ev(AdminKind::Pause, 20 * MIN, None, Some("SBP 186")),
        )
        .unwrap(),
    );
    assert_eq!(delivered_mg(&m, &t, 30 * MIN), 17.5);
    t.push(next_event(&m, &t, ev(AdminKind::Resume, 25 * MIN, None, None)).unwrap());
    assert_eq!(t[2].rate_ml_h, Some(155.3));
    // Stopping early needs a reason; at the end it does not.
    assert_eq!(
        next_event(&m, &t, ev(AdminKind::Stop, 30 * MIN, None, None))
            .unwrap_err()
            .field,
        "reason"
    );
    t.push(next_event(&m, &t, ev(AdminKind::Stop, 45 * MIN, None, None)).unwrap());
    assert_eq!(delivered_mg(&m, &t, 90 * MIN), 35.0);
    assert_eq!(dose_ended_at(&t), Some(45 * MIN));
    assert_eq!(
        next_event(&m, &t, ev(AdminKind::Resume, 50 * MIN, None, None))
            .unwrap_err()
            .field,
        "kind"
    );
    // A bolus is given once.
    let im = order(&protocol("im-injection"), 0.5, Some(70.0)).unwrap();
    assert_eq!(
        next_event(&im, &[], ev(AdminKind::Start, 0, None, None))
            .unwrap_err()
            .field,
        "kind"
    );
    let g = next_event(&im, &[], ev(AdminKind::Given, 0, None, None)).unwrap();
    assert_eq!(delivered_mg(&im, &[g], 0), 35.0);
}

#[test]
fn an_alert_closes_only_with_a_response() {
    assert_eq!(
        check_acknowledgement(Severity::Pause, None, "")
            .unwrap_err()
            .field,
        "response"
    );
    assert_eq!(
        check_acknowledgement(Severity::Pause, Some(" "), "")
            .unwrap_err()
            .field,
        "response"
    );
    assert!(check_acknowledgement(Severity::Pause, Some("shrug"), "").is_err());
    assert_eq!(
        check_acknowledgement(Severity::Pause, Some("pause"), "").unwrap(),
        Response::Pause
    );
    assert!(check_acknowledgement(Severity::Stop, Some("observe"), "").is_err());
    assert!(check_acknowledgement(Severity::Stop, Some("stop"), "").is_ok());
}

#[test]
fn discharge_waits_for_every_criterion() {
    let p = protocol("iv-infusion");
    let ready = DischargeFacts {
        dose_ended_at: Some(0),
        now: 35 * MIN,
        aldrete: Some(9),
        escort_named: true,
        open_alerts: 0,
    };
    assert!(discharge_blockers(&p, &ready).is_empty());
    for (f, want) in [
        (
            DischargeFacts {
                dose_ended_at: None,
                ..ready.clone()
            },
            "has not ended",
        ),
        (
            DischargeFacts {
                now: 20 * MIN,
                ..ready.clone()
            },
            "recovery 20 of at least 30",
        ),
        (
            DischargeFacts {
                aldrete: None,
                ..ready.clone()
            },
            "score the modified Aldrete",
        ),
        (
            DischargeFacts {
                aldrete: Some(8),
                ..ready.clone()
            },
            "Aldrete 8 is below 9",
        ),
        (
            DischargeFacts {
                escort_named: false,
                ..ready.clone()
            },
            "no escort",
        ),
        (
            DischargeFacts {
                open_alerts: 1,
                ..ready.clone()
            },
            "open alert",
        ),
    ] {
        let b = discharge_blockers(&p, &f);
        assert_eq!(b.len(), 1, "{want}: {b:?}");
        assert!(b[0].contains(want), "{want}: {b:?}");
    }
    let a = Aldrete {
        activity: 2,
        respiration: 2,
        circulation: 2,
        consciousness: 1,
        spo2: 2,
    };
    assert_eq!(a.total(), 9);
    assert_eq!(Aldrete { spo2: 3, ..a }.validate()[0].field, "spo2");
}

#[test]
fn medicines_and_adverse_events_are_checked() {
    let m = MedicationGiven {
        name: "Ketamine".into(),
        dose: "10 mg".into(),
        route: "IV".into(),
        reason: "".into(),
        at: None,
    };
    let fields: Vec<String> = m.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["reason", "name"]);
    let ae = AdverseEvent {
        kind: "bad".into(),
        severity: AeSeverity::Mild,
        serious: false,
        description: "".into(),
        action: "ondansetron 4 mg".into(),
        outcome: "resolved".into(),
        follow_up: false,
    };
    assert_eq!(ae.validate()[0].field, "kind");
    assert!(AdverseEvent {
        kind: "nausea_vomiting".into(),
        ..ae
    }
    .validate()
    .is_empty());
}

#[test]
fn protocols_must_carry_their_preparation() {
    let iv = include_str!("../../protocols/iv.toml");
    let e = Protocol::parse("x", &iv.replace("diluent_ml = 100", "diluent_ml = 0")).unwrap_err();
    assert_eq!(e.errors[0].field, "preparation.diluent_ml");
    let e = Protocol::parse("x", &iv.replace("\"suicide_risk\"", "\"no_alcohol\"")).unwrap_err();
    assert_eq!(e.errors[0].field, "checklist");
    let nasal = include_str!("../../protocols/intranasal.toml");
    let e = Protocol::parse("x", &nasal.replace("start = 56", "start = 50")).unwrap_err();
    assert_eq!(e.errors[0].field, "dose.start");
    assert_eq!(protocol("iv-infusion").route, Route::Iv);
}
