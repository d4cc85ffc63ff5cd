//! Configuration of the email notifier: the SMTP server, its TLS mode and credentials, the
//! addresses, and the subject template.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::notify::secret::Secret;

/// Defaults, in one place.
mod defaults {
    use super::*;

    pub const TIMEOUT: Duration = Duration::from_secs(30);
    pub const SUBJECT: &str = "{{ headline }}";
    pub const HELLO_NAME: &str = "millwatch.localdomain";

    pub fn timeout() -> Duration {
        TIMEOUT
    }
    pub fn subject() -> SubjectTemplate {
        // The default is a fixed, valid template.
        SubjectTemplate::parse(SUBJECT).unwrap_or_else(|_| SubjectTemplate {
            text: SUBJECT.into(),
            parts: vec![Part::Var(Var::Headline)],
        })
    }
    pub fn hello_name() -> String {
        HELLO_NAME.to_string()
    }
}

/// An email receiver.
///
/// ```yaml
/// host: smtp.example.net
/// port: 587                    # default: 25 (none), 587 (starttls), 465 (tls)
/// tls: starttls                # none | starttls | tls
/// tls_ca_file: /etc/millwatch/plant-ca.pem   # default: the system's trust store
/// auth: { username: millwatch, password: "..." }
/// from: "Millwatch <millwatch@example.net>"
/// to: [oncall@example.net, "Line 3 <line3@example.net>"]
/// subject: "{{ headline }}"
/// timeout: 30s
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name (also the name its TLS certificate must carry).
    pub host: String,
    /// The SMTP port; by default 25 without TLS, 587 for STARTTLS, 465 for implicit TLS.
    #[serde(default)]
    pub port: Option<u16>,
    /// How the connection is protected.
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM file with the certificate(s) of the CA that signed the server's certificate, for
    /// a plant's own CA; when set, only these are trusted, not the system's trust store.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// SMTP authentication (PLAIN or LOGIN, whichever the server offers).
    #[serde(default)]
    pub auth: Option<SmtpAuth>,
    /// The sender, `addr@example.net` or `Name <addr@example.net>`.
    #[serde(deserialize_with = "mailbox", serialize_with = "mailbox_text")]
    #[schemars(with = "String")]
    pub from: Mailbox,
    /// The recipients (at least one), in the same forms as `from`.
    #[serde(deserialize_with = "mailboxes", serialize_with = "mailbox_texts")]
    #[schemars(with = "Vec<String>")]
    pub to: Vec<Mailbox>,
    /// The subject. Variables: `{{ headline }}` (`[FIRING:2] FeatureDrift (model=scrap)`),
    /// `{{ status }}`, `{{ count }}` (alerts in that status), `{{ title }}` (the alert name,
    /// or `N alerts`), `{{ receiver }}`, `{{ group }}` (the group labels, `k=v, ...`) and
    /// `{{ labels.NAME }}` (a label all alerts share; empty when they do not).
    #[serde(default = "defaults::subject")]
    pub subject: SubjectTemplate,
    /// The name this client gives in EHLO.
    #[serde(default = "defaults::hello_name")]
    pub hello_name: String,
    /// Timeout of one delivery: connection, TLS, the SMTP dialogue and the message.
    #[serde(default = "defaults::timeout", with = "crate::units::duration")]
    #[schemars(with = "crate::units::DurationText")]
    pub timeout: Duration,
}

impl EmailConfig {
    /// The configured port, or the customary one for the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }
}

/// How the SMTP connection is protected.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or a trusted network only).
    None,
    /// Plain connection upgraded with STARTTLS; refused when the server does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte ("implicit TLS", SMTPS).
    Tls,
}

/// SMTP credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
}

/// A parsed subject template; unknown variables and unclosed `{{` are refused when read.
#[derive(Clone, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct SubjectTemplate {
    text: String,
    pub(crate) parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Headline,
    Status,
    Count,
    Title,
    Receiver,
    Group,
    Label(String),
}

impl SubjectTemplate {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("subject `{text}`: `{{{{` without `}}}}`"))?;
            let name = after[..close].trim();
            let var = match name {
                "headline" => Var::Headline,
                "status" => Var::Status,
                "count" => Var::Count,
                "title" => Var::Title,
                "receiver" => Var::Receiver,
                "group" => Var::Group,
                _ => match name.strip_prefix("labels.") {
                    Some(l) if !l.is_empty() => Var::Label(l.to_string()),
                    _ => {
                        return Err(format!(
                            "subject `{text}`: unknown variable `{name}` (known: headline, status, count, title, receiver, group, labels.NAME)"
                        ));
                    }
                },
            };
            parts.push(Part::Var(var));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(SubjectTemplate {
            text: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for SubjectTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl Serialize for SubjectTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for SubjectTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SubjectTemplate::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.parse::<Mailbox>()
        .map_err(|e| format!("`{text}` is not an email address: {e}"))
}

fn mailbox<'de, D: Deserializer<'de>>(d: D) -> Result<Mailbox, D::Error> {
    parse_mailbox(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn mailboxes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Mailbox>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    if texts.is_empty() {
        return Err(serde::de::Error::custom(
            "to: at least one recipient is needed",
        ));
    }
    texts
        .iter()
        .map(|t| parse_mailbox(t).map_err(serde::de::Error::custom))
        .collect()
}

fn mailbox_text<S: Serializer>(m: &Mailbox, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&m.to_string())
}

fn mailbox_texts<S: Serializer>(m: &[Mailbox], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(Mailbox::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Result<EmailConfig, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c = config("host: smtp.example.net\nfrom: mw@example.net\nto: [a@example.net]\n")
            .expect("parses");
        assert_eq!(c.tls, SmtpTls::Starttls);
        assert_eq!(c.port(), 587);
        assert_eq!(c.subject.as_str(), "{{ headline }}");
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.hello_name, "millwatch.localdomain");
        assert!(c.auth.is_none());
        for (tls, port) in [("none", 25), ("starttls", 587), ("tls", 465)] {
            let c = config(&format!(
                "host: h\ntls: {tls}\nfrom: mw@example.net\nto: [a@example.net]\n"
            ))
            .expect("parses");
            assert_eq!(c.port(), port, "{tls}");
        }
    }

    #[test]
    fn full_config_parses_and_hides_the_password() {
        let c = config(
            "host: smtp.example.net\nport: 2525\ntls: tls\ntls_ca_file: /etc/millwatch/ca.pem\nauth: { username: mw, password: pw123 }\nfrom: \"Millwatch <mw@example.net>\"\nto: [a@example.net, \"Line 3 <l3@example.net>\"]\nsubject: \"[mw] {{ title }} on {{ labels.machine }}\"\nhello_name: edge-1.plant\ntimeout: 5s\n",
        )
        .expect("parses");
        assert_eq!(c.port(), 2525);
        assert_eq!(
            c.tls_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/millwatch/ca.pem"))
        );
        assert_eq!(c.to.len(), 2);
        assert_eq!(c.to[1].email.to_string(), "l3@example.net");
        assert_eq!(c.from.name.as_deref(), Some("Millwatch"));
        assert_eq!(
            c.subject.parts,
            vec![
                Part::Text("[mw] ".into()),
                Part::Var(Var::Title),
                Part::Text(" on ".into()),
                Part::Var(Var::Label("machine".into()))
            ]
        );
        assert!(!format!("{c:?}").contains("pw123"));
        assert!(!serde_json::to_string(&c).expect("json").contains("pw123"));
    }

    #[test]
    fn bad_configs_are_refused_with_a_message() {
        let base = "host: h\nfrom: mw@example.net\n";
        for (yaml, want) in [
            (
                format!("{base}to: [a@example.net]\ncc: [b@x]\n"),
                "unknown field `cc`",
            ),
            (format!("{base}to: []\n"), "at least one recipient"),
            (
                format!("{base}to: [not-an-address]\n"),
                "not an email address",
            ),
            (
                format!("{base}to: [a@example.net]\ntls: ssl\n"),
                "unknown variant `ssl`",
            ),
            (
                format!("{base}to: [a@example.net]\nsubject: \"{{{{ value }}}}\"\n"),
                "unknown variable `value`",
            ),
            (
                format!("{base}to: [a@example.net]\nsubject: \"{{{{ title\"\n"),
                "without",
            ),
            (
                format!("{base}to: [a@example.net]\nauth: {{ username: u }}\n"),
                "missing field `password`",
            ),
            (
                format!(
                    "{base}to: [a@example.net]\nauth: {{ username: u, password: p, mechanism: x }}\n"
                ),
                "unknown field `mechanism`",
            ),
            (
                "host: h\nto: [a@example.net]\n".to_string(),
                "missing field `from`",
            ),
            (format!("{base}to: [a@example.net]\nport: 70000\n"), "port"),
        ] {
            let err = config(&yaml).expect_err(&yaml);
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
