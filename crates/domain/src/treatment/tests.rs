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
fn an_iv_order_is_worked_out_to_the_pump_rate_at_the_drawn_strength() {
    let p = protocol("iv-infusion");
    let m = order(&p, 0.5, Some(70.0)).unwrap();
    assert_eq!(m.mg, 35.0);
    assert_eq!(m.minutes, 40);
    assert!(m.second_check);
    // No volume until the drug is drawn: it depends on the vial.
    assert_eq!(m.volume, None);
    assert_eq!(
        m.summary(),
        "0.5 mg/kg x 70 kg = 35 mg; volume when drawn (it depends on the vial's strength)"
    );
    let v = prepare(&m, "KX1", 10.0).unwrap();
    let vol = v.volume.clone().unwrap();
    assert_eq!(
        (vol.drug_ml, vol.total_ml, vol.rate_ml_h),
        (3.5, 103.5, Some(155.3))
    );
    assert_eq!(
        v.summary(),
        "0.5 mg/kg x 70 kg = 35 mg; 3.5 mL of 10 mg/mL (lot KX1) + 100 mL diluent = 103.5 mL at 155.3 mL/h over 40 min"
    );
    // The same order from a 100 mg/mL vial is a tenth of the volume: the
    // volume of the protocol's 10 mg/mL drawn from it would be 350 mg.
    let strong = prepare(&m, "KX9", 100.0).unwrap().volume.unwrap();
    assert_eq!((strong.drug_ml, strong.total_ml), (0.35, 100.35));
    // 0.5 mg/kg x 81.3 kg = 40.65 mg, rounded to the protocol's 0.1 mg.
    let m = order(&p, 0.5, Some(81.3)).unwrap();
    assert_eq!(m.mg, 40.7);
    assert_eq!(m.mg_per_kg, Some(0.501));
}

/// Case 10 of the safety review: the range and the safe maximum hold for
/// the mg actually ordered (rounding down where rounding up would cross
/// them), halves round the same way every time in decimal, and so do pump
/// rates.
#[test]
fn rounding_never_crosses_the_range_and_halves_round_up() {
    let mut iv = protocol("iv-infusion");
    let mut im = protocol("im-injection");
    for p in [&mut iv, &mut im] {
        // The rounding the review found, at whole mg.
        p.preparation.round_mg = 1.0;
    }
    // (protocol, mg/kg, kg, expected mg)
    let cases = [
        (&iv, 0.75, 30.0, 22.0),     // 22.5 would be 0.767 mg/kg: down
        (&im, 1.0, 30.5, 30.0),      // 30.5 up is 31 = 1.016 mg/kg: down
        (&iv, 0.75, 150.0, 112.0),   // 112.5 up is 113: down
        (&iv, 0.75, 42.0, 31.0),     // 31.5 exactly, at the top: down
        (&iv, 0.5, 63.0, 32.0),      // 31.5 inside the range: up, not 31
        (&iv, 0.5, 25.0 + 0.0, 0.0), // below the lightest weight: refused
        (&iv, 0.25, 50.0, 13.0),     // 12.5: up, every time
    ];
    for (p, dose, kg, want) in cases {
        let got = order(p, dose, Some(kg));
        if want == 0.0 {
            assert!(got.is_err(), "{dose} x {kg}");
            continue;
        }
        let m = got.unwrap();
        assert_eq!(m.mg, want, "{dose} mg/kg x {kg} kg");
        assert!(m.mg <= p.dose.max * kg + 1e-9, "{dose} x {kg}: {} mg", m.mg);
    }
    // Pump rates: 111.3 mL over 40 minutes is 166.95 mL/h: 167.0, not 166.9.
    let mut p = protocol("iv-infusion");
    p.preparation.diluent_ml = 100.0;
    let m = order(&p, 0.5, Some(22.6 * 2.0)).unwrap();
    let v = prepare(&m, "L", 2.0).unwrap().volume.unwrap();
    assert_eq!(v.total_ml, 111.3);
    assert_eq!(v.rate_ml_h, Some(167.0));
    // The drawn volume never holds more than the patient's maximum either.
    let top = order(&iv, 0.75, Some(150.0)).unwrap();
    let v = prepare(&top, "L", 100.0).unwrap().volume.unwrap();
    assert!(v.drug_ml * 100.0 <= top.max_mg + 1e-9, "{v:?}");
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
    assert_eq!(
        (m.units, m.is_infusion(), m.is_liquid()),
        (Some(4), false, false)
    );
    assert!(m.summary().ends_with("4 x 14 mg sprays"), "{}", m.summary());
    assert!(prepare(&m, "L", 100.0).is_err(), "sprays are not drawn");
    let e = order(&p, 50.0, None).unwrap_err();
    assert!(
        e[0].message.contains("not a whole number of 14 mg"),
        "{e:?}"
    );
    let s = protocol("sublingual");
    assert_eq!(order(&s, 100.0, None).unwrap().units, Some(4));
    let im = protocol("im-injection");
    let m = prepare(&order(&im, 0.5, Some(64.0)).unwrap(), "L", 50.0).unwrap();
    let v = m.volume.clone().unwrap();
    assert_eq!((m.mg, v.drug_ml, v.rate_ml_h), (32.0, 0.64, None));
}

proptest! {
    /// mg, mL and mL/h round-trip within the rounding rule for any weight,
    /// dose and strength in range, and the mg ordered never leaves the
    /// range or the safe maximum.
    #[test]
    fn maths_round_trips(
        weight in 30.0f64..300.0,
        dose in 0.1f64..=0.75,
        conc in prop::sample::select(vec![10.0, 50.0, 100.0]),
        round in prop::sample::select(vec![0.1, 0.5, 1.0, 2.5, 5.0]),
        diluent in prop::sample::select(vec![50.0, 100.0, 250.0]),
        minutes in 20u32..=120,
    ) {
        let mut p = protocol("iv-infusion");
        p.preparation.round_mg = round;
        p.preparation.diluent_ml = diluent;
        p.administration_minutes = minutes;
        let Ok(m) = order(&p, dose, Some(weight)) else {
            // Only when no multiple of the step fits the range at this weight.
            prop_assert!(round > (p.dose.max - p.dose.min) * weight);
            return Ok(());
        };
        // mg is the dose times the weight, to within one rounding step.
        prop_assert!((m.mg - dose * weight).abs() <= round + 1e-6);
        prop_assert!((m.mg / round - (m.mg / round).round()).abs() < 1e-6);
        // Never outside the range, at the mg actually ordered.
        prop_assert!(m.mg <= p.dose.max * weight + 1e-6, "{} > {}", m.mg, p.dose.max * weight);
        prop_assert!(m.mg >= p.dose.min * weight - 1e-6);
        prop_assert!(m.mg <= p.route.safe_max().1 * weight + 1e-6);
        let m = prepare(&m, "L", conc).unwrap();
        let v = m.volume.clone().unwrap();
        // mL at the drawn strength gives the mg back to the hundredth of a mL.
        prop_assert!((v.drug_ml * conc - m.mg).abs() <= dosing::ML_STEP * conc + 1e-6);
        prop_assert!(v.drug_ml * conc <= m.max_mg + 1e-6);
        prop_assert!((v.total_ml - v.drug_ml - diluent).abs() < 1e-6);
        // The pump at its rate for the infusion's time runs the bag to the tenth of a mL/h.
        let rate = v.rate_ml_h.unwrap();
        let ran = rate * minutes as f64 / 60.0;
        prop_assert!((ran - v.total_ml).abs() <= dosing::RATE_STEP / 2.0 * minutes as f64 / 60.0 + 1e-6);
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

    /// Every route, any dose in its range and any weight: the mg ordered is
    /// inside the range and under the safe maximum.
    #[test]
    fn every_route_orders_inside_its_range(
        weight in 30.0f64..300.0,
        pick in 0usize..5,
        at in 0.0f64..=1.0,
    ) {
        let ids = ["iv-infusion", "im-injection", "sc-injection", "intranasal", "sublingual"];
        let p = protocol(ids[pick]);
        let mut dose = p.dose.min + (p.dose.max - p.dose.min) * at;
        if p.preparation.unit_mg > 0.0 {
            dose = (dose / p.preparation.unit_mg).round() * p.preparation.unit_mg;
        }
        let m = order(&p, dose, Some(weight)).unwrap();
        let per = |v: f64| if p.dose.unit == crate::protocols::DoseUnit::MgPerKg { v * weight } else { v };
        prop_assert!(m.mg <= per(p.dose.max) + 1e-6 && m.mg >= per(p.dose.min) - 1e-6);
        prop_assert!(m.mg <= per(p.route.safe_max().1) + 1e-6);
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
        risk_signals: vec![],
        last_out_of_gate: None,
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
    // A prescriber's override lets high pressure through when it names the
    // reading it answers, never a missing baseline.
    let o = Override {
        reason: "white-coat, 152 on recheck".into(),
        by: "u".into(),
        at: 0,
        reading_id: Some("r1".into()),
        assessment: None,
    };
    let high = Known {
        baseline: Some(Vitals {
            sbp: Some(164),
            dbp: Some(90),
            ..known_ok().baseline.unwrap()
        }),
        last_out_of_gate: Some("r1".into()),
        ..known_ok()
    };
    let c = Checklist {
        vitals_override: Some(o.clone()),
        ..full()
    };
    assert!(incomplete(&evaluate(&p, &c, &high)).is_empty());
    // Case 3: a later reading outside the limits makes the override lapse.
    let later = Known {
        last_out_of_gate: Some("r2".into()),
        ..high.clone()
    };
    let left = incomplete(&evaluate(&p, &c, &later));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("has lapsed"), "{left:?}");
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
    // A positive screen needs the prescriber's assessment; "high" means no dose.
    for (level, ok) in [
        (None, false),
        (Some(RiskLevel::Low), true),
        (Some(RiskLevel::Moderate), true),
        (Some(RiskLevel::High), false),
    ] {
        let c = Checklist {
            suicide_risk: Some(RiskScreen::Positive),
            suicide_risk_override: Some(Override {
                assessment: level,
                ..o.clone()
            }),
            ..full()
        };
        assert_eq!(
            incomplete(&evaluate(&p, &c, &known_ok())).is_empty(),
            ok,
            "{level:?}"
        );
    }
}

/// Case 2 of the safety review: the nurse's "negative" does not clear a
/// risk the record holds (an open safety task, a positive PHQ-9 item 9
/// today); only a prescriber's assessment made after the latest signal does.
#[test]
fn the_record_s_risk_signals_outweigh_a_negative_screen() {
    let p = protocol("iv-infusion");
    let signal = RiskSignal {
        what: "PHQ-9 item 9 answered 3 today".into(),
        at: 100,
    };
    let k = Known {
        risk_signals: vec![signal.clone()],
        ..known_ok()
    };
    let negative = full();
    let left = incomplete(&evaluate(&p, &negative, &k));
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("PHQ-9 item 9"), "{left:?}");
    let assessed = |at: i64, level| Checklist {
        suicide_risk_override: Some(Override {
            reason: "passive thoughts, safety plan in place".into(),
            by: "paul".into(),
            at,
            reading_id: None,
            assessment: Some(level),
        }),
        ..full()
    };
    // Assessed before the signal: not enough.
    assert_eq!(
        incomplete(&evaluate(&p, &assessed(50, RiskLevel::Low), &k)).len(),
        1
    );
    assert!(incomplete(&evaluate(&p, &assessed(150, RiskLevel::Low), &k)).is_empty());
    let high = evaluate(&p, &assessed(150, RiskLevel::High), &k);
    assert!(high
        .iter()
        .any(|i| i.key == "suicide_risk" && matches!(i.state, ItemState::Blocked(_))));
}

/// Case 9 of the safety review: every item can be withdrawn, and a
/// withdrawn item makes the visit not ready again.
#[test]
fn every_item_can_be_withdrawn() {
    let p = protocol("iv-infusion");
    let k = known_ok();
    assert!(incomplete(&evaluate(&p, &full(), &k)).is_empty());
    for key in [
        "identity_confirmed",
        "weight_kg",
        "pregnancy",
        "fasting_confirmed",
        "escort_name",
        "escort_phone",
        "escort",
        "no_alcohol",
        "medications_reviewed",
        "suicide_risk",
    ] {
        let mut c = full();
        c.withdraw(key).unwrap();
        assert!(
            !incomplete(&evaluate(&p, &c, &k)).is_empty(),
            "{key} withdrawn"
        );
    }
    assert_eq!(full().withdraw("vibes").unwrap_err().field, "withdraw");
}

/// Case 5 of the safety review: one dose a day at the most, and no more
/// doses than the plan has.
#[test]
fn the_course_gate_names_its_rule() {
    let p = protocol("iv-infusion");
    const H: i64 = 3_600_000_000;
    assert_eq!(course_gate(&p, None, 0, 6, 0), None);
    let same_day = course_gate(&p, Some(0), 1, 6, 5 * H).unwrap();
    assert!(same_day.contains("one every 20 h"), "{same_day}");
    assert_eq!(course_gate(&p, Some(0), 1, 6, 20 * H), None);
    let done = course_gate(&p, Some(0), 6, 6, 100 * H).unwrap();
    assert!(done.contains("6 doses are all given"), "{done}");
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
    let undrawn = order(&p, 0.5, Some(70.0)).unwrap();
    // Nothing starts before the drug is drawn and its volume known.
    let e = next_event(
        &undrawn,
        &[],
        AdminEvent {
            kind: AdminKind::Start,
            at: 0,
            rate_ml_h: None,
            reason: None,
        },
    )
    .unwrap_err();
    assert!(e.message.contains("draw it"), "{e:?}");
    let m = prepare(&undrawn, "KX1", 10.0).unwrap();
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
    let im = prepare(
        &order(&protocol("im-injection"), 0.5, Some(70.0)).unwrap(),
        "L",
        50.0,
    )
    .unwrap();
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

/// Case 8 of the safety review: every parameter has a stop limit, and a
/// stop alert never closes with "observe" or "reassure".
#[test]
fn every_parameter_can_stop_a_dose() {
    for id in [
        "iv-infusion",
        "im-injection",
        "sc-injection",
        "intranasal",
        "sublingual",
    ] {
        let p = protocol(id);
        let stop = |v: Vitals| {
            let f = check(&p.limits, None, &v);
            assert!(
                f.iter().any(|x| x.severity == Severity::Stop),
                "{id}: {v:?} gave {f:?}"
            );
        };
        stop(Vitals {
            spo2: Some(50),
            ..Vitals::default()
        });
        stop(Vitals {
            hr: Some(20),
            ..Vitals::default()
        });
        stop(Vitals {
            hr: Some(190),
            ..Vitals::default()
        });
        stop(Vitals {
            rr: Some(2),
            ..Vitals::default()
        });
        stop(Vitals {
            rr: Some(40),
            ..Vitals::default()
        });
        stop(Vitals {
            sbp: Some(232),
            dbp: Some(100),
            ..Vitals::default()
        });
        stop(Vitals {
            sbp: Some(170),
            dbp: Some(128),
            ..Vitals::default()
        });
        stop(Vitals {
            moaas: Some(1),
            ..Vitals::default()
        });
        for r in ["observe", "reassure", "pause", "reposition"] {
            assert!(
                check_acknowledgement(Severity::Stop, Some(r), "").is_err(),
                "{r}"
            );
        }
    }
}

/// Case 3 of the safety review: a reading before the dose outside the
/// pre-dose limits is an alert, and one beyond the stop limits a stop.
#[test]
fn readings_before_the_dose_raise_alerts_too() {
    let p = protocol("iv-infusion");
    let crisis = Vitals {
        sbp: Some(232),
        dbp: Some(128),
        hr: Some(128),
        spo2: Some(97),
        ..Vitals::default()
    };
    let f = check_before_dose(&p.pre_dose, &p.limits, &crisis);
    assert!(
        f.iter().filter(|x| x.severity == Severity::Stop).count() >= 2,
        "{f:?}"
    );
    assert!(f.iter().any(|x| x.parameter == "hr"), "{f:?}");
    let high = Vitals {
        sbp: Some(165),
        dbp: Some(95),
        hr: Some(80),
        spo2: Some(98),
        ..Vitals::default()
    };
    let f = check_before_dose(&p.pre_dose, &p.limits, &high);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].message.contains("pre-dose limit"), "{f:?}");
    assert!(outside_gate(&p.pre_dose, &high));
    let calm = Vitals {
        sbp: Some(128),
        dbp: Some(82),
        hr: Some(72),
        spo2: Some(98),
        ..Vitals::default()
    };
    assert!(check_before_dose(&p.pre_dose, &p.limits, &calm).is_empty());
    assert!(!outside_gate(&p.pre_dose, &calm));
}
