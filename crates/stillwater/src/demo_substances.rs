//! The demo's Schedule III record: both clinics registered (Denver's
//! registration close to renewal), a safe or cabinet each, two ketamine
//! products, an initial inventory, receipts, a month of past infusions each
//! drawn, given and the rest wasted before a witness, weekly counts (one in
//! Glendale short and resolved as a documented loss) and an open case in
//! Denver where a vial is missing. Today's visits draw from this stock
//! through the treatment-day demo.

use clinic::actor::Caller;
use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{ClinicId, UserId};
use domain::instruments::Registry;
use domain::protocols::Protocols;
use domain::substances::EntryKind;
use store::substances::{CaseResolution, Count, Inventory, Movement, Product, Storage};
use store::treatment::{NewEncounter, PastVisit};
use store::Store;

const MINUTE: i64 = 60_000_000;

/// A DEA number: the two letters, six digits and their check digit.
fn dea(letters: &str, six: &str) -> String {
    let d: Vec<u32> = six.bytes().map(|c| (c - b'0') as u32).collect();
    let sum = d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5]);
    format!("{letters}{six}{}", sum % 10)
}

fn parse<T: std::str::FromStr>(s: &str) -> anyhow::Result<T> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("demo substances: unreadable id {s}"))
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A local wall-clock time `days_ago` days back, as micros.
fn local(now: i64, zone: &str, days_ago: i64, hour: i8, minute: i8) -> i64 {
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let today = domain::time::to_timestamp(now).to_zoned(tz.clone()).date();
    let day = today
        .checked_sub(jiff::Span::new().days(days_ago))
        .unwrap_or(today);
    day.at(hour, minute, 0, 0)
        .to_zoned(tz)
        .map(|z| z.timestamp().as_microsecond())
        .unwrap_or_default()
}

fn weekday(now: i64, zone: &str, days_ago: i64) -> i8 {
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let today = domain::time::to_timestamp(now).to_zoned(tz).date();
    today
        .checked_sub(jiff::Span::new().days(days_ago))
        .unwrap_or(today)
        .weekday()
        .to_monday_one_offset()
}

/// What happens at one moment of the month, in time order.
enum Step {
    /// A receipt, or a draw with what was given and wasted out of it.
    Moves(Vec<Movement>),
    Count {
        clinic: ClinicId,
        at: i64,
        short: Option<(String, i64)>,
        by: UserId,
        resolve: Option<(i64, &'static str)>,
    },
}

impl Step {
    fn at(&self) -> i64 {
        match self {
            Step::Moves(m) => m.first().map(|m| m.at).unwrap_or_default(),
            Step::Count { at, .. } => *at,
        }
    }
}

struct Site {
    clinic: ClinicId,
    zone: String,
    nurse: UserId,
    witness: UserId,
    lot: String,
    lot_number: &'static str,
    lot_expires: String,
    visit_days: &'static [i8],
    per_day: i64,
}

fn movement(
    kind: EntryKind,
    clinic: ClinicId,
    lot: &str,
    at: i64,
    ul: i64,
    by: UserId,
) -> Movement {
    Movement::new(kind, &clinic.to_string(), lot, at, ul, 50, &by.to_string())
}

pub async fn load(store: &Store, protocols: &Protocols, registry: &Registry) -> anyhow::Result<()> {
    let user = |name: &'static str| async move {
        store
            .user_id_by_username(name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("demo user {name} is missing"))
    };
    let (ada, paul, nina, nora, nate, victor) = (
        user("ada.admin").await?,
        user("paul.prescriber").await?,
        user("nina.nurse").await?,
        user("nora.nurse").await?,
        user("nate.nurse").await?,
        user("victor.crna").await?,
    );
    let org = store
        .any_org()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no organisation"))?;
    let clinics = store.clinics_of_org(org).await?;
    let (Some(g), Some(d)) = (
        clinics.iter().find(|c| c.slug == "stillwater-glendale"),
        clinics.iter().find(|c| c.slug == "stillwater-denver"),
    ) else {
        return Ok(());
    };
    let err = |e: clinic::Error| anyhow::anyhow!("demo substances: {e:?}");
    let app = clinic::Clinic::new(store.clone(), clinic::Config::default());
    let admin = Caller::of_user(&app, ada, "demo-loader")
        .await
        .map_err(err)?;
    let ev = |c: &Caller, a: Action, clinic: ClinicId, kind: &str| {
        let mut e = c.event(a);
        e.clinic_id = Some(clinic.to_string());
        e.object_type = Some(kind.into());
        e
    };

    // Registrations, storage, products.
    store
        .cs_set_registration(
            &g.id.to_string(),
            &dea("BR", "452198"),
            "2028-05-31",
            &ada.to_string(),
            ev(&admin, Action::CsSettings, g.id, "cs_registration"),
        )
        .await?;
    let denver_expiry = local(store.now(), &d.settings.time_zone, -45, 12, 0);
    let denver_expiry = jiff::Timestamp::from_microsecond(denver_expiry)?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    store
        .cs_set_registration(
            &d.id.to_string(),
            &dea("FR", "318274"),
            &denver_expiry,
            &ada.to_string(),
            ev(&admin, Action::CsSettings, d.id, "cs_registration"),
        )
        .await?;
    let safe = Storage {
        id: id(),
        clinic_id: g.id.to_string(),
        name: "Double-locked safe, medication room".into(),
    };
    let cabinet = Storage {
        id: id(),
        clinic_id: d.id.to_string(),
        name: "Locked cabinet B, nurses' station".into(),
    };
    for s in [&safe, &cabinet] {
        let clinic: ClinicId = parse(&s.clinic_id)?;
        store
            .cs_add_storage(s, ev(&admin, Action::CsSettings, clinic, "cs_storage"))
            .await?;
    }
    let p50 = Product {
        id: id(),
        name: "Ketamine hydrochloride".into(),
        ndc: "42023-114-10".into(),
        form: "injection solution".into(),
        strength_mg_per_ml: 50,
        container_ul: 10_000,
    };
    let p100 = Product {
        id: id(),
        name: "Ketamine hydrochloride".into(),
        ndc: "42023-115-10".into(),
        form: "injection solution".into(),
        strength_mg_per_ml: 100,
        container_ul: 5_000,
    };
    for p in [&p50, &p100] {
        store
            .cs_add_product(
                &org.to_string(),
                p,
                ev(&admin, Action::CsSettings, g.id, "cs_product"),
            )
            .await?;
    }
    let today = domain::time::to_timestamp(store.now())
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let in_days = |n: i64| {
        today
            .checked_add(jiff::Span::new().days(n))
            .unwrap_or(today)
            .to_string()
    };
    let g_main = store
        .cs_find_or_add_lot(&p50.id, "KT2409A", &in_days(400))
        .await?;
    let g_short = store
        .cs_find_or_add_lot(&p100.id, "KT2411C", &in_days(60))
        .await?;
    let d_main = store
        .cs_find_or_add_lot(&p50.id, "KT2410B", &in_days(330))
        .await?;

    // Initial inventories (nothing on hand yet), a month and a bit ago.
    for (c, nurse) in [(g, nina), (d, nate)] {
        let day =
            jiff::Timestamp::from_microsecond(local(store.now(), &c.settings.time_zone, 36, 8, 0))?
                .to_zoned(jiff::tz::TimeZone::get(&c.settings.time_zone)?)
                .date();
        let lines = "[]".to_string();
        let sha = {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(lines.as_bytes()))
        };
        let caller = Caller::of_user(&app, nurse, "demo-loader")
            .await
            .map_err(err)?;
        store
            .cs_add_inventory(
                &Inventory {
                    id: id(),
                    clinic_id: c.id.to_string(),
                    kind: "initial".into(),
                    taken_on: day.to_string(),
                    business: "opening".into(),
                    taken_by: nurse.to_string(),
                    taken_at: local(store.now(), &c.settings.time_zone, 36, 8, 0),
                    sha256: sha,
                    lines,
                },
                ev(&caller, Action::CsInventory, c.id, "cs_inventory"),
            )
            .await?;
    }

    let mut steps: Vec<Step> = Vec::new();
    let supplier = serde_json::json!({
        "supplier_name": "Cardinal Health 411", "supplier_address": "7000 Cardinal Pl, Dublin OH 43017",
        "supplier_dea": dea("RC", "019384"), "invoice": "CAH-55120", "containers": 10,
    });
    let receipt = |c: &store::org::Clinic,
                   lot: &str,
                   days: i64,
                   ul: i64,
                   strength: i64,
                   by: UserId,
                   storage: &str,
                   containers: i64| {
        let mut m = movement(
            EntryKind::Receipt,
            c.id,
            lot,
            local(store.now(), &c.settings.time_zone, days, 8, 15),
            ul,
            by,
        );
        m.strength = strength;
        let mut s = supplier.clone();
        s["containers"] = serde_json::json!(containers);
        m.counterparty = Some(s.to_string());
        m.storage_id = Some(storage.to_string());
        m
    };
    for m in [
        receipt(g, &g_main, 33, 100_000, 50, nina, &safe.id, 10),
        receipt(g, &g_short, 33, 20_000, 100, nina, &safe.id, 4),
        receipt(d, &d_main, 32, 60_000, 50, nate, &cabinet.id, 6),
    ] {
        steps.push(Step::Moves(vec![m]));
    }

    // A month of infusions, backfilled as completed visits.
    let sites = [
        Site {
            clinic: g.id,
            zone: g.settings.time_zone.clone(),
            nurse: nina,
            witness: nora,
            lot: g_main.clone(),
            lot_number: "KT2409A",
            lot_expires: in_days(400),
            visit_days: &[1, 2, 3, 4],
            per_day: 2,
        },
        Site {
            clinic: d.id,
            zone: d.settings.time_zone.clone(),
            nurse: nate,
            witness: victor,
            lot: d_main.clone(),
            lot_number: "KT2410B",
            lot_expires: in_days(330),
            visit_days: &[2, 4],
            per_day: 1,
        },
    ];
    let mut k = 0i64;
    for site in &sites {
        let clinic = clinics
            .iter()
            .find(|c| c.id == site.clinic)
            .ok_or_else(|| anyhow::anyhow!("clinic"))?;
        let all = store.search_patients(&[site.clinic], "", 200).await?;
        // Patients the other demos leave alone: Glendale's after the floor's,
        // Denver's last three.
        let chosen: Vec<_> = if site.clinic == g.id {
            all.iter().skip(22).take(3).collect()
        } else {
            all.iter().rev().take(3).collect()
        };
        for p in &chosen {
            crate::demo_intake::make_ready(
                store,
                protocols,
                registry,
                clinic,
                p,
                (site.nurse, paul),
                40,
            )
            .await?;
        }
        let chairs: Vec<String> = store
            .resources(site.clinic)
            .await?
            .into_iter()
            .filter(|r| {
                r.active && matches!(r.resource.kind, domain::scheduling::ResourceKind::Chair)
            })
            .map(|r| r.resource.id.to_string())
            .collect();
        let nurse = Caller::of_user(&app, site.nurse, "demo-loader")
            .await
            .map_err(err)?;
        for days_ago in (1..=30).rev() {
            if !site
                .visit_days
                .contains(&weekday(store.now(), &site.zone, days_ago))
            {
                continue;
            }
            for slot in 0..site.per_day {
                let p = chosen[(k as usize) % chosen.len()];
                k += 1;
                let Some(plan) = store.plans(p.id).await?.into_iter().next() else {
                    continue;
                };
                let Some(protocol) = protocols.get(&plan.protocol_id, plan.protocol_version as u32)
                else {
                    continue;
                };
                let weight = 60.0 + (k * 7 % 30) as f64;
                let maths = domain::treatment::order(protocol, 0.5, Some(weight))
                    .and_then(|m| {
                        domain::treatment::prepare(&m, site.lot_number, 50.0).map_err(|e| vec![e])
                    })
                    .map_err(|e| anyhow::anyhow!("demo dose: {e:?}"))?;
                let opened = local(store.now(), &site.zone, days_ago, 8 + 3 * slot as i8, 30);
                let eid = id();
                let oid = id();
                let started = opened + 25 * MINUTE;
                let stopped = started + 40 * MINUTE;
                let mut audit = nurse.patient_event(
                    Action::EncounterOpen,
                    Permission::EncounterRecord,
                    site.clinic,
                    &p.id.to_string(),
                );
                audit.at = opened;
                audit.object_type = Some("encounter".into());
                audit.object_id = Some(eid.clone());
                store
                    .backfill_visit(
                        &PastVisit {
                            encounter: NewEncounter {
                                id: eid.clone(),
                                clinic: site.clinic,
                                patient: p.id,
                                appointment_id: Some(id()),
                                resource_id: chairs.get(slot as usize).cloned(),
                                plan_id: plan.id.clone(),
                                plan_version: plan.version,
                                protocol_id: plan.protocol_id.clone(),
                                protocol_version: plan.protocol_version,
                                route: plan.route.clone(),
                                by: site.nurse,
                                opened_at: opened,
                                walk_in: None,
                            },
                            order_id: &oid,
                            maths: &serde_json::to_string(&maths)?,
                            mg: maths.mg,
                            second_check: maths.second_check,
                            ordered_by: paul,
                            checked_by: site.nurse,
                            vial_lot: site.lot_number,
                            vial_expires: &site.lot_expires,
                            started_at: started,
                            stopped_at: stopped,
                            discharged_at: stopped + 45 * MINUTE,
                            discharge_note: "Aldrete 10; escort present; instructions given.",
                            appointment: Some((
                                "iv_infusion",
                                "IV infusion",
                                opened,
                                opened + 120 * MINUTE,
                            )),
                        },
                        vec![audit],
                    )
                    .await?;
                // Drawn to the next 0.1 mL above the dose; the rest wasted.
                let given = (maths.mg * 1000.0 / 50.0).round() as i64;
                let drawn = (given / 100 + 1) * 100;
                let mut draw = movement(
                    EntryKind::Draw,
                    site.clinic,
                    &site.lot,
                    started - 5 * MINUTE,
                    drawn,
                    site.nurse,
                );
                draw.draw_id = Some(draw.id.clone());
                draw.dose_order_id = Some(oid.clone());
                draw.patient_id = Some(p.id.to_string());
                draw.reference_id = Some(eid.clone());
                let out_of = |kind: EntryKind, at: i64, ul: i64| {
                    let mut m = movement(kind, site.clinic, &site.lot, at, ul, site.nurse);
                    m.change_ul = 0;
                    m.draw_id = draw.draw_id.clone();
                    m.dose_order_id = Some(oid.clone());
                    m.patient_id = Some(p.id.to_string());
                    m.reference_id = Some(eid.clone());
                    m
                };
                let given_m = out_of(EntryKind::Administered, stopped, given);
                let mut waste = out_of(EntryKind::Waste, stopped + 2 * MINUTE, drawn - given);
                waste.witness_user_id = Some(site.witness.to_string());
                waste.reason = Some("remainder of the draw".into());
                steps.push(Step::Moves(vec![draw, given_m, waste]));
            }
        }
        // Weekly counts on Thursdays after the last visit; Glendale's of two
        // weeks ago was half a mL short, resolved the next morning. Denver's
        // most recent is short a whole vial: that case is still open.
        for days_ago in (1..=30).rev() {
            if weekday(store.now(), &site.zone, days_ago) != 4 {
                continue;
            }
            let short = if site.clinic == g.id && (11..=17).contains(&days_ago) {
                Some((g_main.clone(), 500))
            } else if site.clinic == d.id && days_ago <= 7 {
                Some((d_main.clone(), 10_000))
            } else {
                None
            };
            let resolve = match &short {
                Some(_) if site.clinic == g.id => Some((
                    local(store.now(), &site.zone, days_ago - 1, 9, 30),
                    "A drawn syringe was dropped and discarded during the afternoon rush without a witnessed waste; nurse re-trained on the waste procedure.",
                )),
                _ => None,
            };
            steps.push(Step::Count {
                clinic: site.clinic,
                at: local(store.now(), &site.zone, days_ago, 16, 45),
                short,
                by: site.nurse,
                resolve,
            });
        }
    }

    steps.sort_by_key(|s| s.at());
    for s in steps {
        match s {
            Step::Moves(moves) => {
                let Some(first) = moves.first() else {
                    continue;
                };
                let c = Caller::of_user(&app, parse(&first.actor_user_id)?, "demo-loader")
                    .await
                    .map_err(err)?;
                let clinic: ClinicId = parse(&first.clinic_id)?;
                let mut e = match &first.patient_id {
                    Some(p) => c.patient_event(Action::CsMovement, Permission::CsHandle, clinic, p),
                    None => ev(&c, Action::CsMovement, clinic, "cs_ledger"),
                };
                e.at = first.at;
                store.cs_append(&moves, vec![e]).await?;
            }
            Step::Count {
                clinic,
                at,
                short,
                by,
                resolve,
            } => {
                let c = Caller::of_user(&app, by, "demo-loader")
                    .await
                    .map_err(err)?;
                let counted: Vec<(String, i64)> = store
                    .cs_balances(&[clinic.to_string()])
                    .await?
                    .into_iter()
                    .filter(|b| b.balance_ul > 0)
                    .map(|b| {
                        let off = match &short {
                            Some((lot, n)) if *lot == b.lot_id => *n,
                            _ => 0,
                        };
                        (b.lot_id, b.balance_ul - off)
                    })
                    .collect();
                let zone = clinics
                    .iter()
                    .find(|k| k.id == clinic)
                    .map(|k| k.settings.time_zone.clone())
                    .unwrap_or_default();
                let day = jiff::Timestamp::from_microsecond(at)?
                    .to_zoned(jiff::tz::TimeZone::get(&zone)?)
                    .date()
                    .to_string();
                let mut e = ev(&c, Action::CsCount, clinic, "cs_count");
                e.at = at;
                let (_, cases) = store
                    .cs_record_count(
                        &Count {
                            id: id(),
                            clinic_id: clinic.to_string(),
                            counted_at: at,
                            counted_by: by.to_string(),
                            note: Some("End-of-day count".into()),
                        },
                        &counted,
                        &day,
                        e,
                    )
                    .await?;
                if let (Some((when, note)), Some(case), Some((lot, n))) =
                    (resolve, cases.first(), &short)
                {
                    let pc = Caller::of_user(&app, paul, "demo-loader")
                        .await
                        .map_err(err)?;
                    let mut adj = movement(EntryKind::Adjustment, clinic, lot, when, *n, paul);
                    adj.change_ul = -n;
                    adj.reason = Some(format!("Documented loss: {note}"));
                    adj.reference_id = Some(case.clone());
                    let mut e = ev(&pc, Action::CsCaseResolve, clinic, "cs_case");
                    e.at = when;
                    store
                        .cs_resolve_case(
                            case,
                            &CaseResolution {
                                resolution: "documented_loss",
                                note: note.to_string(),
                                by: paul.to_string(),
                                at: when,
                                adjustment: Some(adj),
                                kind: None,
                            },
                            e,
                        )
                        .await?;
                }
            }
        }
    }
    Ok(())
}
