//! The email notifier: SMTP through lettre (STARTTLS or implicit TLS with rustls, optional
//! authentication, several recipients), a plain-text and an HTML part, and inline charts.

mod config;
mod render;
mod send;

pub use config::{EmailConfig, SmtpAuth, SmtpTls, SubjectTemplate};
pub use render::{InlineChart, RenderedEmail, render, subject};
pub use send::EmailNotifier;
