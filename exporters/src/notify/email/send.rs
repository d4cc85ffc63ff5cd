//! Sending: the MIME message (multipart/alternative of text and HTML, the HTML in a
//! multipart/related with its inline PNG charts; in a multipart/mixed with the attached files
//! when there are any) over SMTP with lettre, and the SMTP result turned into a
//! [`DeliveryOutcome`].

use futures_util::future::BoxFuture;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::config::{EmailConfig, SmtpTls};
use super::render::{RenderedEmail, render};
use crate::notify::alert::Notification;
use crate::notify::outcome::DeliveryOutcome;
use crate::notify::{Notifier, NotifyError, Result};

/// Sends notifications by email.
#[derive(Clone)]
pub struct EmailNotifier {
    config: EmailConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    /// Prepares the SMTP transport (TLS parameters with rustls' `ring` provider and the
    /// platform's trust store). Connects only when sending.
    pub fn new(config: EmailConfig) -> Result<Self> {
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(&config)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(&config)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port())
            .tls(tls)
            .timeout(Some(config.timeout))
            .hello_name(ClientId::Domain(config.hello_name.clone()));
        if let Some(auth) = &config.auth {
            builder = builder.credentials(Credentials::new(
                auth.username.clone(),
                auth.password.expose().to_string(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            config,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &EmailConfig {
        &self.config
    }

    /// Renders the notification, sends it in one SMTP transaction to all recipients, and says
    /// what became of it.
    async fn deliver(&self, notification: &Notification) -> DeliveryOutcome {
        let rendered = render(&self.config.subject, notification);
        let message = match self.message(rendered) {
            Ok(m) => m,
            Err(e) => {
                return DeliveryOutcome::Permanent {
                    reason: format!("cannot build the message: {e}"),
                };
            }
        };
        // lettre's own timeout covers only the connection; a server that stops answering
        // mid-dialogue must not hold the attempt for longer than configured.
        match tokio::time::timeout(self.config.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => DeliveryOutcome::Delivered,
            Ok(Err(e)) => classify(&self.config, &e),
            Err(_) => DeliveryOutcome::unreachable(format!(
                "SMTP delivery timed out after {}",
                humantime_serde::re::humantime::format_duration(self.config.timeout)
            )),
        }
    }

    /// Builds the MIME message of a rendered email.
    pub fn message(&self, e: RenderedEmail) -> std::result::Result<Message, lettre::error::Error> {
        let mut builder = Message::builder()
            .from(self.config.from.clone())
            .subject(e.subject)
            .message_id(Some(format!(
                "<{:016x}.{:016x}@{}>",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                fastrand::u64(..),
                self.config.hello_name
            )))
            .user_agent(concat!("millwatch/", env!("CARGO_PKG_VERSION")).to_string());
        for to in &self.config.to {
            builder = builder.to(to.clone());
        }
        let text = SinglePart::plain(e.text);
        let html = SinglePart::html(e.html);
        let body = if e.charts.is_empty() {
            MultiPart::alternative().singlepart(text).singlepart(html)
        } else {
            let png = ContentType::parse("image/png").map_err(|_| {
                lettre::error::Error::Io(std::io::Error::other("image/png content type"))
            })?;
            let mut related = MultiPart::related().singlepart(html);
            for c in e.charts {
                related = related
                    .singlepart(Attachment::new_inline(c.content_id).body(c.png, png.clone()));
            }
            MultiPart::alternative().singlepart(text).multipart(related)
        };
        if e.attachments.is_empty() {
            return builder.multipart(body);
        }
        let mut mixed = MultiPart::mixed().multipart(body);
        for a in e.attachments {
            let kind = ContentType::parse(&a.content_type)
                .or_else(|_| ContentType::parse("application/octet-stream"))
                .map_err(|_| {
                    lettre::error::Error::Io(std::io::Error::other("attachment content type"))
                })?;
            mixed = mixed.singlepart(Attachment::new(a.filename).body(a.content, kind));
        }
        builder.multipart(mixed)
    }
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }

    /// Emails draw the recent history of their alerts as inline charts.
    fn shows_history(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> BoxFuture<'a, DeliveryOutcome> {
        Box::pin(self.deliver(notification))
    }
}

/// rustls (ring) parameters for `config.host`: the system's trust store, or only the CA
/// certificates of `tls_ca_file`.
fn tls_parameters(config: &EmailConfig) -> Result<TlsParameters> {
    let host = &config.host;
    let fail = |reason: String| NotifyError::Config { reason };
    let mut builder = TlsParameters::builder(host.clone());
    if let Some(path) = &config.tls_ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| fail(format!("tls_ca_file `{}`: {e}", path.display())))?;
        let no_cert = || {
            fail(format!(
                "tls_ca_file `{}`: no PEM certificate in it (-----BEGIN CERTIFICATE-----)",
                path.display()
            ))
        };
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(no_cert());
        }
        let ca = Certificate::from_pem(&pem)
            .map_err(|e| fail(format!("tls_ca_file `{}`: {e}", path.display())))?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(ca);
    }
    builder
        .build_rustls()
        .map_err(|e| fail(format!("SMTP TLS for `{host}`: {e}")))
}

/// The certificate error of a failed TLS handshake, if that is what failed.
fn certificate_error(e: &lettre::transport::smtp::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let rustls_error = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(
            err @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented),
        ) = rustls_error
        {
            return Some(err.to_string());
        }
        source = s.source();
    }
    None
}

/// SMTP replies by their code (4yz transient, 5yz permanent); a client-side refusal (no
/// authentication mechanism in common) and a server certificate that is not trusted are
/// permanent; everything else — connection refused or
/// dropped, timeouts, TLS failures, unparsable replies — may work on a later try.
fn classify(config: &EmailConfig, e: &lettre::transport::smtp::Error) -> DeliveryOutcome {
    let text = crate::http::with_causes(e.to_string(), e);
    if let Some(cert) = certificate_error(e) {
        // Another try meets the same certificate: the trust settings must change first.
        let trusted = match &config.tls_ca_file {
            Some(p) => format!("the CA certificates in tls_ca_file `{}`", p.display()),
            None => "the system's trust store (set tls_ca_file for a private CA)".into(),
        };
        return DeliveryOutcome::Permanent {
            reason: format!(
                "the SMTP server {}:{} presented a certificate that is not trusted: {cert}; checked against {trusted}",
                config.host,
                config.port()
            ),
        };
    }
    if let Some(code) = e.status() {
        return DeliveryOutcome::from_smtp_reply(u16::from(code), &text);
    }
    if e.is_client() {
        return DeliveryOutcome::Permanent { reason: text };
    }
    DeliveryOutcome::unreachable(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::{Alert, Labels, Point, Series};
    use std::time::{Duration, UNIX_EPOCH};

    fn notifier(extra: &str) -> EmailNotifier {
        let c: EmailConfig = serde_saphyr::from_str(&format!(
            "host: 127.0.0.1\ntls: none\nfrom: \"Millwatch <mw@example.net>\"\nto: [a@example.net, b@example.net]\n{extra}"
        ))
        .expect("parses");
        EmailNotifier::new(c).expect("builds")
    }

    fn notification(series: bool) -> Notification {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let mut a = Alert::firing(
            [("alertname".to_string(), "MachineTemp".to_string())].into(),
            Labels::new(),
            t,
        );
        if series {
            a.series = Some(Series {
                name: "temperature".into(),
                points: vec![
                    Point {
                        time: t,
                        value: 60.0,
                    },
                    Point {
                        time: t + Duration::from_secs(60),
                        value: 71.0,
                    },
                ],
                threshold: Some(70.0),
            });
        }
        Notification::new("ops", "k", Labels::new(), vec![a], "")
    }

    #[test]
    fn mime_structure_with_and_without_charts() {
        let n = notifier("");
        let plain = String::from_utf8(
            n.message(render(&n.config.subject, &notification(false)))
                .expect("builds")
                .formatted(),
        )
        .expect("utf-8");
        assert!(
            plain.contains("Content-Type: multipart/alternative"),
            "{plain}"
        );
        assert!(!plain.contains("multipart/related"), "{plain}");
        assert!(plain.contains("Subject: [FIRING:1] MachineTemp"), "{plain}");
        assert!(
            plain.contains("To: a@example.net, b@example.net"),
            "{plain}"
        );

        let with = String::from_utf8(
            n.message(render(&n.config.subject, &notification(true)))
                .expect("builds")
                .formatted(),
        )
        .expect("utf-8");
        let alt = with.find("multipart/alternative").expect("alternative");
        let plain_part = with.find("Content-Type: text/plain").expect("text part");
        let rel = with.find("multipart/related").expect("related");
        let html = with.find("Content-Type: text/html").expect("html part");
        let png = with.find("Content-Type: image/png").expect("png part");
        assert!(
            alt < plain_part && plain_part < rel && rel < html && html < png,
            "{with}"
        );
        assert!(with.contains("Content-ID: <chart-1-"), "{with}");
        assert!(with.contains("Content-Disposition: inline"), "{with}");
    }

    #[tokio::test]
    async fn a_server_that_never_greets_times_out_as_retryable() {
        // The kernel completes the connection; nobody ever writes the 220 greeting.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let n = notifier(&format!("port: {port}\ntimeout: 300ms\n"));
        match n.deliver(&notification(false)).await {
            DeliveryOutcome::Retryable { reason, .. } => {
                assert!(reason.contains("timed out after 300ms"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        drop(silent);
    }

    #[tokio::test]
    async fn nothing_listening_is_retryable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let n = notifier(&format!("port: {port}\ntimeout: 2s\n"));
        let got = n.deliver(&notification(false)).await;
        assert!(got.is_retryable(), "{got}");
    }
}
