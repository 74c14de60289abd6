//! The demo's month of cash-pay billing, made through the same use cases the
//! front desk uses: each clinic's billing details, price list and offers
//! (Glendale's new-patient special: intake waived, $275 an infusion for the
//! first six), packages (an induction series; Denver's maintenance year),
//! the month's attended visits, no-shows and late cancellations invoiced,
//! most paid by card or cash, some from a package, a few still owed, and a
//! good-faith estimate. The visits of the last two days and today, and the
//! three latest infusions, are left for the front desk to check out.

// Money is written as dollars_cents (275_00 is $275.00).
#![allow(clippy::inconsistent_digit_grouping)]

use std::collections::{BTreeMap, HashMap};

use clinic::actor::Caller;
use clinic::billing as uc;
use domain::audit::Action;
use domain::billing::Service;
use store::billing::StoredPriceList;
use store::Store;

const DAY: i64 = 86_400_000_000;
const MINUTE: i64 = 60_000_000;

fn err(e: clinic::Error) -> anyhow::Error {
    anyhow::anyhow!("demo billing: {e:?}")
}

fn prices(list: &[(Service, i64)]) -> String {
    let m: BTreeMap<Service, i64> = list.iter().copied().collect();
    serde_json::to_string(&m).unwrap_or_default()
}

pub async fn load(store: &Store) -> anyhow::Result<()> {
    let (Some(ada), Some(dana)) = (
        store.user_id_by_username("ada.admin").await?,
        store.user_id_by_username("dana.frontdesk").await?,
    ) else {
        return Ok(());
    };
    let Some(org) = store.any_org().await? else {
        return Ok(());
    };
    let state = clinic::Clinic::new(store.clone(), clinic::Config::default());
    let admin = Caller::of_user(&state, ada, "demo-loader")
        .await
        .map_err(err)?;
    let desk = Caller::of_user(&state, dana, "demo-loader")
        .await
        .map_err(err)?;
    let now = store.now();
    let clinics = store.clinics_of_org(org).await?;
    for clinic in &clinics {
        let here = clinic.id.to_string();
        let glendale = clinic.slug == "stillwater-glendale";
        if !admin.may(domain::auth::Permission::BillManage, clinic.id) {
            continue;
        }
        // The front desk of Glendale; the admin takes the desk's part elsewhere.
        let desk = if desk.may(domain::auth::Permission::BillCharge, clinic.id) {
            &desk
        } else {
            &admin
        };
        let p = uc::place(&state, &admin, domain::auth::Permission::BillManage, &here)
            .await
            .map_err(err)?;
        uc::set_settings(
            &state,
            &admin,
            uc::SettingsInput {
                clinic_id: here.clone(),
                legal_name: format!("{} PLLC", clinic.settings.name),
                npi: if glendale { "1452763893" } else { "1688027535" }.into(),
                tax_id: if glendale { "86-2718345" } else { "84-3920417" }.into(),
                currency: "USD".into(),
                refund_fee: "50.00".into(),
            },
        )
        .await
        .map_err(err)?;
        // The price list has been in force for three months (the use case
        // only takes lists from today on, so the demo writes its history).
        use Service::*;
        let list = if glendale {
            prices(&[
                (Consultation, 0),
                (Intake, 175_00),
                (IvInfusion, 300_00),
                (ImInjection, 250_00),
                (Intranasal, 200_00),
                (Integration, 150_00),
                (FollowUp, 120_00),
                (RescueMedication, 35_00),
                (ExtendedRecovery, 95_00),
                (LateCancelFee, 100_00),
                (NoShowFee, 150_00),
            ])
        } else {
            prices(&[
                (Consultation, 0),
                (Intake, 300_00),
                (IvInfusion, 575_00),
                (ImInjection, 400_00),
                (Intranasal, 350_00),
                (Integration, 180_00),
                (FollowUp, 150_00),
                (RescueMedication, 45_00),
                (ExtendedRecovery, 120_00),
                (LateCancelFee, 150_00),
                (NoShowFee, 200_00),
            ])
        };
        let from = p
            .today()
            .checked_sub(jiff::Span::new().days(90))
            .unwrap_or(p.today());
        let mut ev = admin.event(Action::BillSettings);
        ev.clinic_id = Some(here.clone());
        ev.object_type = Some("price_list".into());
        store
            .insert_price_list(
                &StoredPriceList {
                    id: uuid::Uuid::now_v7().to_string(),
                    clinic_id: here.clone(),
                    effective_from: from.to_string(),
                    currency: "USD".into(),
                    prices: list,
                    created_at: now - 90 * DAY,
                },
                &ada.to_string(),
                ev,
            )
            .await?;
        if glendale {
            uc::add_offer(
                &state,
                &admin,
                uc::OfferInput {
                    clinic_id: here.clone(),
                    name: "New Patient Special".into(),
                    // Launched three weeks ago: patients first seen before are not new.
                    valid_from: p
                        .today()
                        .checked_sub(jiff::Span::new().days(21))
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    valid_to: p
                        .today()
                        .checked_add(jiff::Span::new().days(90))
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    new_patients_only: true,
                    first_n: Some(6),
                    stackable: false,
                    rules: vec![
                        uc::RuleInput {
                            kind: "waive".into(),
                            service: "intake".into(),
                            ..Default::default()
                        },
                        uc::RuleInput {
                            kind: "fixed_price".into(),
                            service: "iv_infusion".into(),
                            price: "275.00".into(),
                            ..Default::default()
                        },
                    ],
                },
            )
            .await
            .map_err(err)?;
        }
        let product = uc::add_package_product(
            &state,
            &admin,
            if glendale {
                uc::PackageProductInput {
                    clinic_id: here.clone(),
                    name: "Induction series".into(),
                    service: "iv_infusion".into(),
                    sessions: 6,
                    price: "1650.00".into(),
                    valid_days: Some(120),
                    monthly: false,
                }
            } else {
                uc::PackageProductInput {
                    clinic_id: here.clone(),
                    name: "Maintenance year".into(),
                    service: "iv_infusion".into(),
                    sessions: 26,
                    price: "13500.00".into(),
                    valid_days: Some(365),
                    monthly: false,
                }
            },
        )
        .await
        .map_err(err)?;
        // A maintenance membership: one infusion a month for a monthly fee.
        let membership = uc::add_package_product(
            &state,
            &admin,
            uc::PackageProductInput {
                clinic_id: here.clone(),
                name: "Maintenance membership".into(),
                service: "iv_infusion".into(),
                sessions: 1,
                price: if glendale { "525.00" } else { "550.00" }.into(),
                valid_days: None,
                monthly: true,
            },
        )
        .await
        .map_err(err)?;

        // The month's visits, oldest first, up to two days ago.
        let cutoff = p.start_of(
            p.today()
                .checked_sub(jiff::Span::new().days(2))
                .unwrap_or(p.today()),
        );
        let visits = store
            .visits_to_invoice(&here, now - 35 * DAY, cutoff)
            .await?;
        // The three latest infusions wait at the desk too, whatever the weekday.
        let waiting: Vec<String> = visits
            .iter()
            .rev()
            .filter(|v| v.type_code == "iv_infusion" && v.status == "completed")
            .take(3)
            .map(|v| v.appointment_id.clone())
            .collect();
        let mut packages: HashMap<String, String> = HashMap::new();
        let mut sold = 0;
        for (k, v) in visits.iter().enumerate() {
            if waiting.contains(&v.appointment_id)
                || v.status == "completed"
                    && Service::of_appointment(&v.type_code) == Some(Service::Consultation)
            {
                continue;
            }
            let at = v.ends_at + 10 * MINUTE;
            // Two patients buy a package at their first infusion of the month.
            if v.type_code == "iv_infusion"
                && v.status == "completed"
                && !packages.contains_key(&v.patient_id)
                && sold < if glendale { 2 } else { 1 }
                && k % 3 == 1
            {
                let inv =
                    uc::sell_package_at(&state, desk, &v.patient_id, &product, at - 20 * MINUTE)
                        .await
                        .map_err(err)?;
                pay(
                    &state,
                    desk,
                    &inv,
                    "card",
                    "",
                    &format!("AUTH {:06}", 318_200 + k),
                    at - 20 * MINUTE,
                )
                .await?;
                if let Some(pk) = store
                    .packages_of_patient(&v.patient_id)
                    .await?
                    .into_iter()
                    .find(|p| p.invoice_id == inv)
                {
                    packages.insert(v.patient_id.clone(), pk.id);
                }
                sold += 1;
            }
            let inv = match uc::invoice_visit_at(&state, desk, &v.appointment_id, None, at).await {
                Ok(i) => i,
                // A visit the price list does not bill (nothing to do).
                Err(clinic::Error::Conflict(_)) => continue,
                Err(e) => return Err(err(e)),
            };
            let view = uc::invoice(&state, desk, &inv).await.map_err(err)?;
            let mut owed = view.balance;
            if let Some(pk) = packages.get(&v.patient_id) {
                let left = store.package(pk).await?.map(|p| p.left()).unwrap_or(0);
                if left > 0 && view.lines.iter().any(|l| l.service == "iv_infusion") {
                    pay(&state, desk, &inv, "package_credit", pk, "", at).await?;
                    owed = uc::invoice(&state, desk, &inv).await.map_err(err)?.balance;
                }
            }
            if owed <= 0 {
                continue;
            }
            match k % 7 {
                // A few are still owed: the receivables report has something to age.
                3 => {}
                1 | 5 => pay(&state, desk, &inv, "cash", "", "", at).await?,
                _ => {
                    pay(
                        &state,
                        desk,
                        &inv,
                        "card",
                        "",
                        &format!("AUTH {:06}", 402_700 + k * 13),
                        at,
                    )
                    .await?;
                }
            }
        }
        // Patients in maintenance joined the membership about six weeks ago
        // and paid the first month by card; the renewals below bill the rest.
        // (Not the patients whose visits wait at the desk: the check-out
        // journey starts from those.)
        let at_desk: Vec<&str> = visits
            .iter()
            .filter(|v| waiting.contains(&v.appointment_id))
            .map(|v| v.patient_id.as_str())
            .collect();
        let registry: Vec<String> = store
            .search_patients(&[clinic.id], "", 100)
            .await?
            .into_iter()
            .map(|p| p.id.to_string())
            .collect();
        let members: Vec<&String> = visits
            .iter()
            .rev()
            .filter(|v| v.status == "completed")
            .map(|v| &v.patient_id)
            .chain(registry.iter())
            .filter(|p| !packages.contains_key(*p) && !at_desk.contains(&p.as_str()))
            .fold(vec![], |mut seen, p| {
                if !seen.contains(&p) {
                    seen.push(p);
                }
                seen
            });
        for (k, m) in members
            .into_iter()
            .take(if glendale { 2 } else { 1 })
            .enumerate()
        {
            let at = now - 44 * DAY + k as i64 * DAY;
            let inv = uc::start_membership_at(&state, desk, m, &membership, at)
                .await
                .map_err(err)?;
            pay(
                &state,
                desk,
                &inv,
                "card",
                "",
                &format!("AUTH {:06}", 515_100 + k),
                at + MINUTE,
            )
            .await?;
        }
    }
    uc::renew_memberships(&state, now).await.map_err(err)?;
    // A prospective patient at Glendale gets a good-faith estimate of an
    // induction under the new-patient special.
    if let Some(g) = clinics.iter().find(|c| c.slug == "stillwater-glendale") {
        let patients = store.search_patients(&[g.id], "", 200).await?;
        let billed: Vec<String> = store
            .visits_to_invoice(&g.id.to_string(), 0, i64::MAX)
            .await?
            .into_iter()
            .map(|v| v.patient_id)
            .collect();
        if let Some(p) = patients
            .iter()
            .rev()
            .find(|p| !billed.contains(&p.id.to_string()))
        {
            uc::make_estimate(
                &state,
                &desk,
                &p.id.to_string(),
                domain::billing::EstimateInput {
                    service: Service::IvInfusion,
                    induction: 6,
                    every_weeks: 4,
                    months: 6,
                    integration: 6,
                    intake: true,
                },
            )
            .await
            .map_err(err)?;
        }
    }
    Ok(())
}

async fn pay(
    state: &clinic::Clinic,
    c: &Caller,
    invoice: &str,
    method: &str,
    package: &str,
    reference: &str,
    at: i64,
) -> anyhow::Result<()> {
    uc::pay(
        state,
        c,
        invoice,
        uc::PaymentInput {
            method: method.into(),
            amount: if method == "package_credit" {
                String::new()
            } else {
                let v = uc::invoice(state, c, invoice).await.map_err(err)?;
                format!("{}.{:02}", v.balance / 100, v.balance % 100)
            },
            reference: reference.into(),
            package_id: package.into(),
            email_receipt: false,
            at: Some(at),
        },
    )
    .await
    .map(|_| ())
    .map_err(err)
}
