// Money is written as dollars_cents (275_00 is $275.00).
#![allow(clippy::inconsistent_digit_grouping)]

use super::*;
use proptest::prelude::*;

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

fn glendale() -> Vec<PriceList> {
    vec![PriceList {
        effective_from: d("2026-01-01"),
        currency: "USD".into(),
        prices: BTreeMap::from([
            (Service::Intake, 175_00),
            (Service::IvInfusion, 300_00),
            (Service::Integration, 150_00),
        ]),
    }]
}

fn special() -> Offer {
    Offer {
        id: "nps".into(),
        name: "New Patient Special".into(),
        rules: vec![
            Rule::Waive {
                service: Service::Intake,
            },
            Rule::FixedPrice {
                service: Service::IvInfusion,
                minor: 275_00,
            },
        ],
        valid_from: d("2026-01-01"),
        valid_to: Some(d("2026-12-31")),
        new_patients_only: true,
        first_n: Some(6),
        stackable: false,
    }
}

#[test]
fn amounts_are_read_in_whole_cents_and_bad_ones_named() {
    assert_eq!(parse_amount("p", "275", "USD"), Ok(275_00));
    assert_eq!(parse_amount("p", "$1,950.5", "USD"), Ok(1950_50));
    assert_eq!(parse_amount("p", " 0.07 ", "USD"), Ok(7));
    assert_eq!(parse_amount("p", "1,234,567.89", "USD"), Ok(123_456_789));
    assert_eq!(parse_amount("p", "12.50 USD", "usd"), Ok(1250));
    assert_eq!(parse_amount("p", "€12.50", "EUR"), Ok(1250));
    // Ambiguous or foreign amounts are named, never guessed: "1,00" is not
    // $100.00, "0,5" not $5.00, "1,2,3" not $123.00.
    for bad in [
        "",
        "-5",
        "12.345",
        "abc",
        "1e3",
        "$",
        "99999999999",
        "1,00",
        "0,5",
        "1,2,3",
        "1,2345",
        ",100",
        "€1.00",
        "£1.00",
        "1.00 EUR",
        "EUR 1.00",
        "1 000",
    ] {
        let e = parse_amount("price", bad, "USD").unwrap_err();
        assert_eq!(e.field, "price", "{bad}");
    }
    assert_eq!(fmt_money(1_495_000, "USD"), "$14,950.00");
    assert_eq!(fmt_money(-2_500, "USD"), "-$25.00");
    assert_eq!(fmt_money(1250, "EUR"), "EUR 12.50");
    assert!(check_currency("c", "usd").is_ok());
    assert_eq!(check_currency("c", "XYZ").unwrap_err().field, "c");
}

#[test]
fn the_new_patient_special_on_a_six_infusion_induction_saves_325() {
    let input = EstimateInput {
        service: Service::IvInfusion,
        induction: 6,
        every_weeks: 0,
        months: 0,
        integration: 0,
        intake: true,
    };
    let e = estimate(
        &input,
        &glendale(),
        &[special()],
        d("2026-11-23"),
        &PatientHistory::default(),
    )
    .unwrap();
    assert_eq!(e.list_total, 175_00 + 6 * 300_00);
    let saved: i64 = e.savings.iter().map(|s| s.minor).sum();
    assert_eq!(saved, 325_00, "{:?}", e.savings);
    assert_eq!(e.total, 6 * 275_00);
    // The savings are the rule's, described from it.
    assert!(e
        .savings
        .iter()
        .any(|s| s.words.contains("Intake fee waived")));
    assert!(e
        .savings
        .iter()
        .any(|s| s.words.contains("IV infusion at $275.00")));
}

#[test]
fn infusions_every_two_weeks_for_a_year_at_575_come_to_about_15000() {
    let lists = vec![PriceList {
        effective_from: d("2026-01-01"),
        currency: "USD".into(),
        prices: BTreeMap::from([(Service::IvInfusion, 575_00)]),
    }];
    let input = EstimateInput {
        service: Service::IvInfusion,
        induction: 0,
        every_weeks: 2,
        months: 12,
        integration: 0,
        intake: false,
    };
    assert_eq!(input.maintenance_doses(), 26);
    let e = estimate(
        &input,
        &lists,
        &[],
        d("2026-11-23"),
        &PatientHistory::default(),
    )
    .unwrap();
    assert_eq!(e.total, 14_950_00);
    assert!((e.total - 15_000_00).abs() < 100_00);
}

#[test]
fn an_offer_outside_its_dates_or_used_up_or_for_new_patients_is_refused_with_why() {
    let o = special();
    let fresh = PatientHistory::default();
    assert!(o
        .refusal(d("2027-01-02"), &fresh, Service::IvInfusion)
        .unwrap()
        .contains("runs from 2026-01-01 to 2026-12-31"));
    let old = PatientHistory {
        first_charge: Some(d("2025-06-01")),
        ..Default::default()
    };
    assert!(o
        .refusal(d("2026-11-23"), &old, Service::IvInfusion)
        .unwrap()
        .contains("new patients"));
    let mut h = PatientHistory::default();
    for _ in 0..6 {
        let ds = discounts(
            std::slice::from_ref(&o),
            Service::IvInfusion,
            300_00,
            "USD",
            d("2026-11-23"),
            &mut h,
        );
        assert_eq!(ds.len(), 1);
        assert_eq!(ds[0].minor, 25_00);
    }
    assert!(discounts(
        std::slice::from_ref(&o),
        Service::IvInfusion,
        300_00,
        "USD",
        d("2026-11-23"),
        &mut h
    )
    .is_empty());
    assert!(o
        .refusal(d("2026-11-23"), &h, Service::IvInfusion)
        .unwrap()
        .contains("first 6"));
}

#[test]
fn offers_are_checked() {
    let mut o = special();
    o.valid_to = Some(d("2025-01-01"));
    o.rules.push(Rule::PercentOff {
        service: Service::Intake,
        percent: 0,
    });
    o.first_n = Some(0);
    let DomainError::Invalid(errs) = o.check().unwrap_err() else {
        panic!()
    };
    let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"valid_to"));
    assert!(fields.contains(&"rules"));
    assert!(fields.contains(&"first_n"));
    let mut neg = glendale();
    neg[0].prices.insert(Service::FollowUp, -1);
    assert!(neg[0].check().is_err());
}

#[test]
fn the_best_offer_wins_and_stackable_ones_apply_on_what_is_left() {
    let mut a = special();
    a.new_patients_only = false;
    a.first_n = None;
    let b = Offer {
        id: "b".into(),
        name: "Veterans".into(),
        rules: vec![Rule::PercentOff {
            service: Service::IvInfusion,
            percent: 20,
        }],
        stackable: false,
        ..a.clone()
    };
    let c = Offer {
        id: "c".into(),
        name: "Loyalty".into(),
        rules: vec![Rule::PercentOff {
            service: Service::IvInfusion,
            percent: 10,
        }],
        stackable: true,
        ..a.clone()
    };
    let mut h = PatientHistory::default();
    let ds = discounts(
        &[a, b, c],
        Service::IvInfusion,
        300_00,
        "USD",
        d("2026-11-23"),
        &mut h,
    );
    // 20 % (60.00) beats 25.00; then 10 % of the 240.00 left.
    assert_eq!(
        ds.iter().map(|x| x.minor).collect::<Vec<_>>(),
        vec![60_00, 24_00]
    );
}

#[test]
fn infusion_and_psychotherapy_codes_go_by_time() {
    assert_eq!(extra_infusion_hours(45), 0);
    assert_eq!(extra_infusion_hours(90), 0);
    assert_eq!(extra_infusion_hours(91), 1);
    assert_eq!(extra_infusion_hours(150), 1);
    assert_eq!(extra_infusion_hours(151), 2);
    assert_eq!(psychotherapy_code(15), None);
    assert_eq!(psychotherapy_code(30), Some("90832"));
    assert_eq!(psychotherapy_code(45), Some("90834"));
    assert_eq!(psychotherapy_code(60), Some("90837"));
    let c = codes(
        Service::IvInfusion,
        &VisitFacts {
            infusion_minutes: Some(100),
            minutes: 120,
            drug: Some(("0409-2051-05".into(), 35.0)),
        },
    );
    let got: Vec<_> = c.iter().map(|c| (c.code.as_str(), c.units)).collect();
    assert_eq!(got, vec![("96365", 1), ("96366", 1), ("J3490", 1)]);
    assert_eq!(c[2].ndc.as_deref(), Some("0409-2051-05"));
    assert!(codes(Service::NoShowFee, &VisitFacts::default()).is_empty());
}

#[test]
fn refunds_above_what_was_paid_and_mixed_currencies_are_refused() {
    let mut a = Account::default();
    let e = |kind, minor: i64, cur: &str, refund_of| Entry {
        kind,
        minor,
        currency: cur.into(),
        refund_of,
    };
    a.apply(&e(EntryKind::Charge, 300_00, "USD", None)).unwrap();
    let p = a
        .apply(&e(EntryKind::Payment, 100_00, "USD", None))
        .unwrap();
    let err = a
        .apply(&e(EntryKind::Refund, 100_01, "USD", Some(p)))
        .unwrap_err();
    assert!(
        err.to_string().contains("paid and not yet refunded"),
        "{err}"
    );
    let err = a
        .apply(&e(EntryKind::Payment, 5_00, "EUR", None))
        .unwrap_err();
    assert!(err.to_string().contains("cannot be mixed"), "{err}");
    let err = a
        .apply(&e(EntryKind::Payment, 200_01, "USD", None))
        .unwrap_err();
    assert!(err.to_string().contains("still owed"), "{err}");
    let err = a
        .apply(&e(EntryKind::Credit, 200_01, "USD", None))
        .unwrap_err();
    assert!(err.to_string().contains("credit note"), "{err}");
    assert!(a.apply(&e(EntryKind::Payment, 0, "USD", None)).is_err());
    assert_eq!(a.balance(), 200_00);
}

#[test]
fn a_package_refund_is_the_unused_part_less_the_fee() {
    assert_eq!(package_refund(1950_00, 6, 2, 0), 1300_00);
    assert_eq!(package_refund(1950_00, 6, 2, 50_00), 1250_00);
    assert_eq!(package_refund(100_00, 3, 1, 0), 66_66);
    assert_eq!(package_refund(1950_00, 6, 6, 0), 0);
    assert_eq!(package_refund(100_00, 6, 5, 500_00), 0);
}

#[derive(Debug, Clone)]
enum Op {
    Charge(i64),
    Discount(i64),
    Pay(i64),
    Refund(usize, i64),
    Credit(i64),
    Foreign(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..100_000).prop_map(Op::Charge),
        (1i64..50_000).prop_map(Op::Discount),
        (1i64..100_000).prop_map(Op::Pay),
        (0usize..20, 1i64..100_000).prop_map(|(i, m)| Op::Refund(i, m)),
        (1i64..50_000).prop_map(Op::Credit),
        (1i64..1000).prop_map(Op::Foreign),
    ]
}

proptest! {
    /// For any sequence of charges, payments, refunds and credits, the
    /// balance equals the sum of the accepted entries, no refund ever
    /// exceeds what was paid, and a refused entry changes nothing.
    #[test]
    fn the_balance_always_equals_the_ledger(ops in proptest::collection::vec(op(), 1..60)) {
        let mut a = Account::default();
        let mut ledger: Vec<(EntryKind, i64)> = vec![];
        let mut payments = vec![];
        for o in ops {
            let before = a.clone();
            let (kind, minor, cur, refund_of) = match o {
                Op::Charge(m) => (EntryKind::Charge, m, "USD", None),
                Op::Discount(m) => (EntryKind::Discount, m, "USD", None),
                Op::Pay(m) => (EntryKind::Payment, m, "USD", None),
                Op::Refund(i, m) => (EntryKind::Refund, m, "USD", payments.get(i % payments.len().max(1)).copied()),
                Op::Credit(m) => (EntryKind::Credit, m, "USD", None),
                Op::Foreign(m) => (EntryKind::Payment, m, "EUR", None),
            };
            match a.apply(&Entry { kind, minor, currency: cur.into(), refund_of }) {
                Ok(pos) => {
                    ledger.push((kind, minor));
                    if kind == EntryKind::Payment { payments.push(pos); }
                }
                Err(_) => prop_assert_eq!(&a, &before),
            }
            let sum: i64 = ledger.iter().map(|(k, m)| match k {
                EntryKind::Charge | EntryKind::Refund => *m,
                _ => -*m,
            }).sum();
            prop_assert_eq!(a.balance(), sum);
            prop_assert!(a.refunded <= a.paid);
            prop_assert!(a.discounted <= a.charged);
            prop_assert!(a.paid - a.refunded <= a.net());
        }
    }
}

#[test]
fn an_npi_is_ten_digits_with_its_luhn_check_digit() {
    // CMS's example NPI, and the same with each possible wrong check digit.
    assert_eq!(check_npi(" 1234567893 ").unwrap(), "1234567893");
    for last in 0..10 {
        if last != 3 {
            let e = check_npi(&format!("123456789{last}")).unwrap_err();
            assert_eq!(e.field, "npi");
            assert!(e.message.contains("check digit"), "{}", e.message);
        }
    }
    for bad in [
        "",
        "123456789",
        "12345678931",
        "12345678a3",
        "１２３４５６７８９３",
    ] {
        let e = check_npi(bad).unwrap_err();
        assert!(e.message.contains("ten digits"), "{bad}: {}", e.message);
    }
}

#[test]
fn a_tax_id_is_an_ein_written_with_its_hyphen() {
    assert_eq!(check_tax_id("12-3456789").unwrap(), "12-3456789");
    for bad in [
        "123456789",
        "12-345678",
        "1-23456789",
        "12-34567a9",
        "12–3456789",
    ] {
        assert_eq!(check_tax_id(bad).unwrap_err().field, "tax_id", "{bad}");
    }
}

proptest! {
    /// Changing any one digit of a valid NPI makes it invalid (Luhn finds
    /// every single-digit error).
    #[test]
    fn one_changed_digit_of_an_npi_is_found(pos in 0usize..10, by in 1u32..10) {
        let good = "1234567893";
        let mut d: Vec<u32> = good.chars().map(|c| c.to_digit(10).unwrap()).collect();
        d[pos] = (d[pos] + by) % 10;
        let changed: String = d.iter().map(|x| char::from_digit(*x, 10).unwrap()).collect();
        prop_assert!(check_npi(&changed).is_err());
    }
}
