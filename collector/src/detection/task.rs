//! Which task a model version's labelled events are for, and so which performance metrics
//! apply: the events' `ml.model.task` when they carry it, otherwise what the predictions,
//! labels and scores look like. A classifier is binary when its classes are 0 and 1 (or false
//! and true), so that class 1 is the positive one and `ml.prediction.score` its probability.

use serde::Serialize;

use super::performance::{Labelled, LabelledEvent};
use crate::signals::{ModelTask, Prediction};

/// What a window's performance is measured as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Classes 0 and 1: accuracy; precision, recall and F1 of class 1; ROC AUC from the scores.
    BinaryClassification,
    /// Any other classes: accuracy and macro-averaged precision, recall and F1.
    MulticlassClassification,
    /// Numbers: MAE, RMSE, R² and MAPE.
    Regression,
}

/// The rule that decided the task, reported with every performance result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskRule {
    /// The events' `ml.model.task`.
    Attribute,
    /// Predictions or labels that are strings or booleans.
    ClassLabels,
    /// Whole-number predictions and labels, with `ml.prediction.score`.
    Score,
    /// Every prediction and label is 0 or 1.
    ZeroOne,
    /// Numbers that none of the rules above calls classes.
    Numbers,
}

/// A task and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    pub task: Task,
    pub rule: TaskRule,
}

/// The task of a model version from its labelled events: the window's and the baseline's
/// together, so that a window whose labels happen to be all 0 and 1 is measured as the rest.
/// An `ml.model.task` wins; when events disagree, the window's newest one does.
pub fn decide(window: &Labelled, baseline: Option<&Labelled>) -> Decided {
    let empty = Labelled::default();
    let baseline = baseline.unwrap_or(&empty);
    let newest_first = || {
        window
            .events
            .iter()
            .rev()
            .chain(baseline.events.iter().rev())
    };
    let explicit = newest_first().find_map(|e| e.task);
    let (classifier, rule) = match explicit {
        Some(t) => (t == ModelTask::Classification, TaskRule::Attribute),
        None => match inferred(newest_first) {
            Some(rule) => (true, rule),
            None => (false, TaskRule::Numbers),
        },
    };
    let task = if !classifier {
        Task::Regression
    } else if newest_first().all(|e| {
        binary_class(&class_name(&e.actual)).is_some()
            && binary_class(&class_name(&e.predicted)).is_some()
    }) {
        Task::BinaryClassification
    } else {
        Task::MulticlassClassification
    };
    Decided { task, rule }
}

/// The rule that calls the events a classifier's, if one does.
fn inferred<'a, I: Iterator<Item = &'a LabelledEvent>>(events: impl Fn() -> I) -> Option<TaskRule> {
    let values = || events().flat_map(|e| [&e.actual, &e.predicted]);
    if values().any(|v| matches!(v, Prediction::Class(_))) {
        return Some(TaskRule::ClassLabels);
    }
    let number = |v: &Prediction| match v {
        Prediction::Number(x) => *x,
        Prediction::Class(_) => f64::NAN,
    };
    if values().all(|v| number(v).fract() == 0.0) && events().any(|e| e.score.is_some()) {
        return Some(TaskRule::Score);
    }
    if values().all(|v| number(v) == 0.0 || number(v) == 1.0) {
        return Some(TaskRule::ZeroOne);
    }
    None
}

/// The class a prediction or label names: a whole number as an integer (`1.0` is class "1").
pub fn class_name(value: &Prediction) -> String {
    match value {
        Prediction::Class(c) => c.clone(),
        Prediction::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", *x as i64),
        Prediction::Number(x) => x.to_string(),
    }
}

/// Whether a class is the positive one of a binary classifier (1 or true), the negative one
/// (0 or false), or neither.
pub fn binary_class(class: &str) -> Option<bool> {
    match class {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(
        pairs: &[(Prediction, Prediction, Option<f64>)],
        task: Option<ModelTask>,
    ) -> Labelled {
        Labelled {
            events: pairs
                .iter()
                .map(|(a, p, s)| LabelledEvent {
                    actual: a.clone(),
                    predicted: p.clone(),
                    score: *s,
                    task,
                })
                .collect(),
        }
    }

    fn n(x: f64) -> Prediction {
        Prediction::Number(x)
    }

    fn c(s: &str) -> Prediction {
        Prediction::Class(s.into())
    }

    fn decided(task: Task, rule: TaskRule) -> Decided {
        Decided { task, rule }
    }

    #[test]
    fn each_rule_in_turn() {
        use Task::*;
        use TaskRule::*;
        // README's example: 1.0/0.0 with a score, labels 0/1.
        let scored = events(
            &[(n(1.0), n(1.0), Some(0.87)), (n(0.0), n(1.0), Some(0.6))],
            None,
        );
        assert_eq!(decide(&scored, None), decided(BinaryClassification, Score));
        let zero_one = events(&[(n(1.0), n(0.0), None), (n(0.0), n(0.0), None)], None);
        assert_eq!(
            decide(&zero_one, None),
            decided(BinaryClassification, ZeroOne)
        );
        let classes = events(&[(c("good"), c("porous"), None)], None);
        assert_eq!(
            decide(&classes, None),
            decided(MulticlassClassification, ClassLabels)
        );
        let booleans = events(&[(c("true"), n(0.0), None)], None);
        assert_eq!(
            decide(&booleans, None),
            decided(BinaryClassification, ClassLabels)
        );
        // Class ids with a score: a multi-class classifier.
        let ids = events(
            &[(n(2.0), n(1.0), Some(0.7)), (n(0.0), n(0.0), Some(0.9))],
            None,
        );
        assert_eq!(decide(&ids, None), decided(MulticlassClassification, Score));
        // Counts without a score, and fractions with one, are numbers.
        let counts = events(&[(n(2.0), n(3.0), None), (n(0.0), n(1.0), None)], None);
        assert_eq!(decide(&counts, None), decided(Regression, Numbers));
        let fractions = events(&[(n(0.5), n(0.25), Some(0.9))], None);
        assert_eq!(decide(&fractions, None), decided(Regression, Numbers));
    }

    #[test]
    fn the_attribute_wins_and_the_baseline_counts() {
        let zero_one = events(&[(n(1.0), n(0.0), None)], None);
        let regression = events(&[(n(1.0), n(0.0), None)], Some(ModelTask::Regression));
        assert_eq!(
            decide(&regression, None),
            decided(Task::Regression, TaskRule::Attribute)
        );
        // The window's own events say nothing: the baseline's attribute decides.
        assert_eq!(decide(&zero_one, Some(&regression)).task, Task::Regression);
        let declared = events(&[(n(3.0), n(2.0), None)], Some(ModelTask::Classification));
        assert_eq!(
            decide(&declared, None),
            decided(Task::MulticlassClassification, TaskRule::Attribute)
        );
        // A window of 0/1 values of a model whose baseline counted to 4 stays a regression.
        let counts = events(&[(n(4.0), n(3.0), None)], None);
        assert_eq!(decide(&zero_one, Some(&counts)).task, Task::Regression);
    }
}
