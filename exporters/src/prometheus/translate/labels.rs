//! A point's final label set: its attributes, then the scope and resource labels, sorted, with
//! clashes resolved as the specification says.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::{Label, Pending, Translator, any_value_string};

/// Builds the label set of each point from its attributes plus the scope and resource labels.
pub(super) struct PointLabels<'c, 'r> {
    pub(super) translator: &'c Translator,
    pub(super) resource: &'c [Pending<'r>],
    pub(super) scope: &'c [Pending<'r>],
    pub(super) pending: &'c mut Vec<Pending<'r>>,
    pub(super) labels: &'c mut Vec<Label<'r>>,
}

impl<'r> PointLabels<'_, 'r> {
    pub(super) fn build(&mut self, attrs: &'r [KeyValue]) -> &[Label<'r>] {
        self.pending.clear();
        for kv in attrs {
            self.pending.push((
                self.translator.label_name(&kv.key),
                0,
                &kv.key,
                any_value_string(kv.value.as_ref()),
            ));
        }
        self.pending.extend(self.scope.iter().cloned());
        self.pending.extend(self.resource.iter().cloned());
        finish_labels(self.pending, self.labels);
        self.labels
    }
}

/// Sorts pending labels by name and resolves clashes: point attributes win over scope and
/// resource labels; point attributes that sanitise to the same name are joined with `;` in
/// the order of their original keys, as the specification says. Empty values are left out
/// (Prometheus treats an empty label as an absent one).
pub(super) fn finish_labels<'r>(pending: &mut [Pending<'r>], out: &mut Vec<Label<'r>>) {
    out.clear();
    pending.sort_unstable_by(|a, b| (&*a.0, a.1, a.2).cmp(&(&*b.0, b.1, b.2)));
    let mut i = 0;
    while i < pending.len() {
        let mut j = i + 1;
        while j < pending.len() && *pending[j].0 == *pending[i].0 {
            j += 1;
        }
        let prio = pending[i].1;
        let same: Vec<&Pending<'r>> = pending[i..j].iter().filter(|p| p.1 == prio).collect();
        let value = if same.len() == 1 {
            same[0].3.clone()
        } else {
            Cow::Owned(
                same.iter()
                    .map(|p| p.3.as_ref())
                    .collect::<Vec<_>>()
                    .join(";"),
            )
        };
        if !value.is_empty() {
            out.push((pending[i].0.clone(), value));
        }
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::translate::Name;

    #[test]
    fn clashing_label_names_are_joined_in_key_order() {
        let mut pending: Vec<Pending<'_>> = vec![
            (Name::Borrowed("a_b"), 0, "a_b", Cow::Borrowed("2")),
            (Name::Borrowed("a_b"), 0, "a.b", Cow::Borrowed("1")),
            (Name::Borrowed("job"), 2, "job", Cow::Borrowed("svc")),
            (Name::Borrowed("job"), 0, "job", Cow::Borrowed("mine")),
            (Name::Borrowed("empty"), 0, "empty", Cow::Borrowed("")),
        ];
        let mut out = Vec::new();
        finish_labels(&mut pending, &mut out);
        let got: Vec<(String, String)> = out
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![("a_b".into(), "1;2".into()), ("job".into(), "mine".into())]
        );
    }
}
