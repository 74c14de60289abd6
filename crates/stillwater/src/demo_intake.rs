//! The demo's patients before their first dose: consent documents published
//! by the admin for each clinic and route (Glendale's IV document already at
//! version 2), and Glendale patients at each stage: ready with a plan (two
//! versions), consent signed under the old version, blocked by an exclusion,
//! waiting for more information, and a consent withdrawn.

use domain::assessment::{
    self as a, Answer, AnxietyProfile, Baseline, ClinicalPart, Diagnosis, Finding, PatientPart,
    PriorTreatment, TreatmentResponse, HISTORY,
};
use domain::audit::Action;
use domain::eligibility::{decide, Condition, DecisionInput, Medication, Policy, Suggestion};
use domain::ids::{ClinicId, PatientId, UserId};
use domain::instruments::Registry;
use domain::plans::{Goal, PlanInput};
use domain::protocols::{Protocols, Route};
use domain::scheduling::CourseKind;
use sha2::{Digest, Sha256};
use store::audit::NewAuditEvent;
use store::intake::NewConsent;
use store::patients::PatientRecord;
use store::Store;

const DAY: i64 = 86_400_000_000;

fn ev(clinic: ClinicId, patient: Option<PatientId>, a: Action, kind: &str) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(a, "demo-loader");
    e.clinic_id = Some(clinic.to_string());
    e.patient_id = patient.map(|p| p.to_string());
    e.object_type = Some(kind.into());
    e.source_ip = Some("cli".into());
    e
}

fn patient_part(
    yes: &[Condition],
    unsure: &[Condition],
    trauma: bool,
    meds: Vec<Medication>,
) -> PatientPart {
    PatientPart {
        screen: Condition::ALL
            .iter()
            .map(|c| {
                let x = if yes.contains(c) {
                    Answer::Yes
                } else if unsure.contains(c) {
                    Answer::Unsure
                } else {
                    Answer::No
                };
                (*c, x)
            })
            .collect(),
        history: HISTORY
            .iter()
            .map(|(k, _)| {
                let yes = (*k == "trauma" && trauma)
                    || (*k == "urinary_problems" && yes.contains(&Condition::KetamineCystitis));
                (k.to_string(), if yes { Answer::Yes } else { Answer::No })
            })
            .collect(),
        allergies: "Penicillin (rash)".into(),
        medications: meds,
        treatments: vec![
            PriorTreatment {
                treatment: "sertraline".into(),
                dose: "150 mg".into(),
                weeks: 12,
                response: TreatmentResponse::Partial,
            },
            PriorTreatment {
                treatment: "escitalopram".into(),
                dose: "20 mg".into(),
                weeks: 10,
                response: TreatmentResponse::None,
            },
        ],
        psychotherapies: "CBT, 12 sessions (2023)".into(),
        anxiety: if trauma {
            AnxietyProfile {
                cognitive: 2,
                somatic: 3,
                behavioural: 2,
                triggers: "Loud noises, driving at night".into(),
            }
        } else {
            AnxietyProfile {
                cognitive: 3,
                somatic: 1,
                behavioural: 2,
                triggers: "Work deadlines, crowded shops".into(),
            }
        },
        calming: "Slow breathing, a weighted blanket, quiet music".into(),
        support: "Partner and a sister nearby; sees a therapist monthly".into(),
        escort_name: "Partner".into(),
        escort_phone: "602-555-0144".into(),
    }
}

fn clinical_part(present: &[Condition], unknown: &[Condition], sbp: u32) -> ClinicalPart {
    ClinicalPart {
        diagnoses: vec![Diagnosis {
            code: "F41.1".into(),
            label: "Generalized anxiety disorder".into(),
        }],
        screen: Condition::ALL
            .iter()
            .map(|c| {
                let f = if present.contains(c) {
                    Finding::Present
                } else if unknown.contains(c) {
                    Finding::Unknown
                } else {
                    Finding::Absent
                };
                (*c, f)
            })
            .collect(),
        trials: vec![
            domain::eligibility::Trial {
                treatment: "sertraline".into(),
                adequate_dose: true,
                weeks: 12,
            },
            domain::eligibility::Trial {
                treatment: "escitalopram".into(),
                adequate_dose: true,
                weeks: 10,
            },
        ],
        baseline: Some(Baseline {
            sbp,
            dbp: 82,
            hr: 74,
            spo2: 98,
            weight_kg: 71.4,
            height_cm: 168.0,
        }),
        notes: "Engaged and hopeful; understands the commitment of an induction course.".into(),
    }
}

struct Ctx<'a> {
    store: &'a Store,
    clinic: &'a store::org::Clinic,
    nina: UserId,
}

impl Ctx<'_> {
    async fn parts(
        &self,
        p: &PatientRecord,
        pp: Option<PatientPart>,
        kp: Option<ClinicalPart>,
    ) -> anyhow::Result<()> {
        if let Some(pp) = pp {
            self.store
                .insert_assessment_part(
                    self.clinic.id,
                    p.id,
                    "patient",
                    &serde_json::to_string(&pp)?,
                    "link",
                    None,
                    None,
                    ev(
                        self.clinic.id,
                        Some(p.id),
                        Action::AssessmentRecord,
                        "assessment",
                    ),
                )
                .await?;
        }
        if let Some(kp) = kp {
            self.store
                .insert_assessment_part(
                    self.clinic.id,
                    p.id,
                    "clinical",
                    &serde_json::to_string(&kp)?,
                    "staff",
                    Some(self.nina),
                    None,
                    ev(
                        self.clinic.id,
                        Some(p.id),
                        Action::AssessmentRecord,
                        "assessment",
                    ),
                )
                .await?;
        }
        Ok(())
    }

    async fn sign(&self, p: &PatientRecord, route: Route, days_ago: i64) -> anyhow::Result<String> {
        let key = clinic::intake::route_key(route);
        let doc = self
            .store
            .current_consent_document(self.clinic.id, &key)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no consent document for {key}"))?;
        let name = format!("{} {}", p.details.given_name, p.details.family_name);
        let signed_at = self.store.now() - days_ago * DAY;
        let pdf =
            clinic::intake::consent_pdf(self.clinic, p, &doc, &name, signed_at, "in the clinic")
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let id = uuid::Uuid::now_v7().to_string();
        let c = NewConsent {
            id: id.clone(),
            clinic: self.clinic.id,
            patient: p.id,
            document: &doc,
            typed_name: name,
            signed_at,
            channel: "clinic",
            recorded_by: Some(self.nina),
            link_id: None,
            pdf_sha256: hex::encode(Sha256::digest(&pdf)),
            pdf,
        };
        self.store
            .insert_consent(
                &c,
                ev(self.clinic.id, Some(p.id), Action::ConsentSign, "consent"),
            )
            .await?;
        Ok(id)
    }
}

pub async fn load(store: &Store, protocols: &Protocols, registry: &Registry) -> anyhow::Result<()> {
    let (Some(ada), Some(paul), Some(nina)) = (
        store.user_id_by_username("ada.admin").await?,
        store.user_id_by_username("paul.prescriber").await?,
        store.user_id_by_username("nina.nurse").await?,
    ) else {
        return Ok(());
    };
    let org = store
        .any_org()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no organisation"))?;
    let clinics = store.clinics_of_org(org).await?;
    let publish = |clinic: ClinicId, route: Route, source: String, witness: bool| async move {
        let doc =
            domain::consent::Document::parse(&source).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        store
            .publish_consent_document(
                clinic,
                &clinic::intake::route_key(route),
                &doc.title,
                &source,
                &doc.text(),
                &doc.hash(),
                witness,
                ada,
                ev(clinic, None, Action::ConsentPublish, "consent_document"),
            )
            .await?;
        anyhow::Ok(())
    };
    for k in &clinics {
        for r in [Route::Iv, Route::Im, Route::Intranasal, Route::Sublingual] {
            publish(
                k.id,
                r,
                domain::consent::template(r),
                r == Route::Intranasal,
            )
            .await?;
        }
    }
    let Some(clinic) = clinics.iter().find(|c| c.slug == "stillwater-glendale") else {
        return Ok(());
    };
    let cx = Ctx {
        store,
        clinic,
        nina,
    };
    let patients = store.search_patients(&[clinic.id], "", 200).await?;
    let mut pts = patients.iter().skip(12);
    let (Some(ready), Some(old), Some(blocked), Some(more), Some(gone)) =
        (pts.next(), pts.next(), pts.next(), pts.next(), pts.next())
    else {
        return Ok(());
    };
    // The decisions for the first four were loaded with the measures.
    cx.parts(
        ready,
        Some(patient_part(&[], &[], true, vec![])),
        Some(clinical_part(&[], &[], 126)),
    )
    .await?;
    cx.parts(
        old,
        Some(patient_part(
            &[],
            &[],
            false,
            vec![Medication {
                name: "clonazepam".into(),
                daily_mg: Some(2.0),
            }],
        )),
        Some(clinical_part(&[], &[], 134)),
    )
    .await?;
    cx.parts(
        blocked,
        Some(patient_part(
            &[Condition::KetamineCystitis],
            &[],
            false,
            vec![],
        )),
        Some(clinical_part(&[Condition::KetamineCystitis], &[], 122)),
    )
    .await?;
    cx.parts(
        more,
        Some(patient_part(
            &[],
            &[Condition::PregnancyOrBreastfeeding],
            false,
            vec![],
        )),
        None,
    )
    .await?;
    cx.parts(
        gone,
        Some(patient_part(&[], &[], false, vec![])),
        Some(clinical_part(&[], &[], 128)),
    )
    .await?;

    // Signed under IV version 1, which the clinic then revised.
    cx.sign(old, Route::Iv, 40).await?;
    let v2 = domain::consent::template(Route::Iv).replace(
        "We can give you a superbill",
        "Payment is due on the day of each session. We can give you a superbill",
    );
    publish(clinic.id, Route::Iv, v2, false).await?;

    // Ready: consent of the current version and a plan in two versions.
    cx.sign(ready, Route::Iv, 9).await?;
    let first = PlanInput {
        protocol: "iv-infusion".into(),
        course: CourseKind::Induction,
        doses: None,
        targets: vec!["gad7".into(), "phq9".into(), "pcl5".into()],
        goal: Goal::Response,
        modality: a::Modality::Emdr,
        notes: "Integration with EMDR within 48 hours of each infusion.".into(),
        reason: String::new(),
    };
    let (plan, _) = domain::plans::check(first.clone(), protocols, "", registry, true)?;
    let consent = store
        .consents(ready.id)
        .await?
        .first()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    let elig = store
        .decisions(ready.id)
        .await?
        .first()
        .map(|d| d.version)
        .unwrap_or(1);
    store
        .insert_plan(
            clinic.id,
            ready.id,
            &plan,
            elig,
            &consent,
            paul,
            ev(
                clinic.id,
                Some(ready.id),
                Action::PlanCreate,
                "treatment_plan",
            ),
        )
        .await?;
    let second = PlanInput {
        doses: Some(6),
        goal: Goal::Remission,
        reason:
            "Trauma history weighs more than first thought: aim for remission, PCL-5 as a target"
                .into(),
        ..first
    };
    let (plan, _) = domain::plans::check(second, protocols, "", registry, false)?;
    store
        .insert_plan(
            clinic.id,
            ready.id,
            &plan,
            elig,
            &consent,
            paul,
            ev(
                clinic.id,
                Some(ready.id),
                Action::PlanCreate,
                "treatment_plan",
            ),
        )
        .await?;

    // Eligible and signed off, consented, then withdrew.
    let d = decide(
        DecisionInput {
            facts: a::facts(None, Some(&clinical_part(&[], &[], 128))),
            decision: Suggestion::Eligible,
            conditions: String::new(),
            rationale: "Two adequate SSRI trials without remission; no exclusions.".into(),
        },
        &Policy::default(),
    )?;
    let v = store
        .insert_decision(
            clinic.id,
            gone.id,
            &d,
            paul,
            ev(
                clinic.id,
                Some(gone.id),
                Action::EligibilityDecide,
                "eligibility_decision",
            ),
        )
        .await?;
    store
        .sign_off_decision(
            gone.id,
            v,
            nina,
            ev(
                clinic.id,
                Some(gone.id),
                Action::EligibilitySignOff,
                "eligibility_decision",
            ),
        )
        .await?;
    let c = cx.sign(gone, Route::Iv, 5).await?;
    store
        .withdraw_consent(
            gone.id,
            &c,
            nina,
            "Patient's wish: wants to try TMS first",
            ev(clinic.id, Some(gone.id), Action::ConsentWithdraw, "consent"),
        )
        .await?;
    Ok(())
}

/// Takes a Glendale patient through the whole pre-treatment path (assessment,
/// eligibility signed off, IV consent, an induction plan), as the treatment
/// day's demo patients have done.
pub(crate) async fn make_ready(
    store: &Store,
    protocols: &Protocols,
    registry: &Registry,
    clinic: &store::org::Clinic,
    p: &PatientRecord,
    staff: (UserId, UserId),
    days_ago: i64,
) -> anyhow::Result<()> {
    let (nina, paul) = staff;
    let cx = Ctx {
        store,
        clinic,
        nina,
    };
    let kp = clinical_part(&[], &[], 118 + (days_ago as u32 % 20));
    cx.parts(
        p,
        Some(patient_part(&[], &[], false, vec![])),
        Some(kp.clone()),
    )
    .await?;
    let d = decide(
        DecisionInput {
            facts: a::facts(None, Some(&kp)),
            decision: Suggestion::Eligible,
            conditions: String::new(),
            rationale: "GAD after two adequate SSRI trials and CBT; no exclusions.".into(),
        },
        &Policy::default(),
    )?;
    let e = |a: Action, kind: &str| ev(clinic.id, Some(p.id), a, kind);
    let v = store
        .insert_decision(
            clinic.id,
            p.id,
            &d,
            paul,
            e(Action::EligibilityDecide, "eligibility_decision"),
        )
        .await?;
    store
        .sign_off_decision(
            p.id,
            v,
            nina,
            e(Action::EligibilitySignOff, "eligibility_decision"),
        )
        .await?;
    let consent = cx.sign(p, Route::Iv, days_ago).await?;
    let input = PlanInput {
        protocol: "iv-infusion".into(),
        course: CourseKind::Induction,
        doses: None,
        targets: vec!["gad7".into(), "phq9".into()],
        goal: Goal::Response,
        modality: a::Modality::Cbt,
        notes: "Integration session within 72 hours of each infusion.".into(),
        reason: String::new(),
    };
    let (plan, _) = domain::plans::check(input, protocols, "", registry, true)?;
    store
        .insert_plan(
            clinic.id,
            p.id,
            &plan,
            v,
            &consent,
            paul,
            e(Action::PlanCreate, "treatment_plan"),
        )
        .await?;
    Ok(())
}
