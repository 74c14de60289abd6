//! E-mail out, over SMTP (lettre). Subjects never carry patient data.

use std::time::Duration;

use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where e-mail goes: a real SMTP server, or nowhere (jobs are then finished
/// as "skipped" so that a clinic without mail does not pile them up).
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Box<Mailbox>,
    },
    Off,
}

impl Mailer {
    /// From an URL such as `smtp://relay:25`, `smtp://user:pass@host:587?tls=required`
    /// or `smtps://host:465`; empty turns mail off.
    pub fn from_url(url: &str, from: &str) -> Result<Mailer, String> {
        if url.trim().is_empty() {
            return Ok(Mailer::Off);
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("smtp_url: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("mail_from {from:?}: {e}"))?;
        Ok(Mailer::Smtp {
            transport: Box::new(transport),
            from: Box::new(from),
        })
    }

    /// Sends plain text, with a calendar file (`visit.ics`) attached when
    /// one is given, so the visit can be added to the patient's calendar.
    pub(crate) async fn send_with(
        &self,
        to: &str,
        subject: &str,
        body: String,
        calendar: Option<String>,
    ) -> Result<bool, String> {
        let Mailer::Smtp { transport, from } = self else {
            return Ok(false);
        };
        let to: Mailbox = to
            .parse()
            .map_err(|_| "the patient's e-mail address is not valid".to_string())?;
        let builder = Message::builder()
            .from(from.as_ref().clone())
            .to(to)
            .subject(subject);
        let msg = match calendar {
            None => builder.header(ContentType::TEXT_PLAIN).body(body),
            Some(ics) => {
                let kind = ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
                    .map_err(|e| format!("calendar content type: {e}"))?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(body))
                        .singlepart(Attachment::new("visit.ics".into()).body(ics, kind)),
                )
            }
        }
        .map_err(|e| format!("building the message: {e}"))?;
        transport
            .send(msg)
            .await
            .map(|_| true)
            .map_err(|e| format!("SMTP: {e}"))
    }
}
