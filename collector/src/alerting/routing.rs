//! The routing tree: which receivers an alert goes to and in which notification group, as
//! Alertmanager routes (depth first, the first matching child unless it says `continue`).

use std::time::Duration;

use millwatch_exporters::notify::Labels;

use super::config::{GROUP_INTERVAL, GROUP_WAIT, REPEAT_INTERVAL, RouteConfig};
use super::rules::{Matcher, all_match};

/// Which labels split alerts into groups.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    Labels(Vec<String>),
    /// `[...]`: every label, one group per alert.
    All,
}

/// A route with everything inherited filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Its place in the tree, `route` or `route.routes[1]`: part of the group key.
    pub id: String,
    pub receiver: String,
    pub matchers: Vec<Matcher>,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub continue_: bool,
    pub routes: Vec<Route>,
}

impl Route {
    /// The tree of a checked config (the root names a receiver).
    pub fn tree(config: &RouteConfig) -> Route {
        let root = Route {
            id: String::new(),
            receiver: String::new(),
            matchers: Vec::new(),
            group_by: GroupBy::Labels(vec!["alertname".into()]),
            group_wait: GROUP_WAIT,
            group_interval: GROUP_INTERVAL,
            repeat_interval: REPEAT_INTERVAL,
            continue_: false,
            routes: Vec::new(),
        };
        build(config, &root, "route".into())
    }

    /// The routes an alert with `labels` takes (empty when not even this one matches).
    pub fn matching(&self, labels: &Labels) -> Vec<&Route> {
        if !all_match(&self.matchers, labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let found = child.matching(labels);
            let matched = !found.is_empty();
            all.extend(found);
            if matched && !child.continue_ {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The labels of the group an alert with `labels` falls in on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }

    /// The group's key: the route and the group labels, stable across restarts.
    pub fn group_key(&self, group_labels: &Labels) -> String {
        let inner: Vec<String> = group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{}:{{{}}}", self.id, inner.join(","))
    }
}

fn build(c: &RouteConfig, parent: &Route, id: String) -> Route {
    let group_by = match &c.group_by {
        Some(by) if by.iter().any(|l| l == "...") => GroupBy::All,
        Some(by) => GroupBy::Labels(by.clone()),
        None => parent.group_by.clone(),
    };
    let mut route = Route {
        id: id.clone(),
        receiver: c
            .receiver
            .clone()
            .unwrap_or_else(|| parent.receiver.clone()),
        matchers: c.matchers.clone(),
        group_by,
        group_wait: c.group_wait.unwrap_or(parent.group_wait),
        group_interval: c.group_interval.unwrap_or(parent.group_interval),
        repeat_interval: c.repeat_interval.unwrap_or(parent.repeat_interval),
        continue_: c.continue_,
        routes: Vec::new(),
    };
    let children = c
        .routes
        .iter()
        .enumerate()
        .map(|(i, child)| build(child, &route, format!("{id}.routes[{i}]")))
        .collect();
    route.routes = children;
    route
}

#[cfg(test)]
mod tests {
    use super::*;
    use millwatch_exporters::notify::alert::labels;

    fn tree(yaml: &str) -> Route {
        Route::tree(&serde_saphyr::from_str::<RouteConfig>(yaml).expect("route"))
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let root = tree(
            r#"
receiver: default
group_by: [alertname, model]
group_wait: 5s
routes:
  - matchers: ['severity="critical"']
    receiver: pager
    continue: true
    group_wait: 1s
  - matchers: ['team="ml"']
    receiver: ml-mail
    routes:
      - matchers: ['model="churn"']
        receiver: churn-hook
        group_by: [feature]
  - matchers: ['team="ml"']
    receiver: never
"#,
        );
        let names = |l: &Labels| -> Vec<String> {
            root.matching(l)
                .iter()
                .map(|r| r.receiver.clone())
                .collect()
        };
        assert_eq!(names(&labels(&[("team", "x")])), ["default"]);
        assert_eq!(
            names(&labels(&[("severity", "critical"), ("team", "ml")])),
            ["pager", "ml-mail"]
        );
        assert_eq!(
            names(&labels(&[("team", "ml"), ("model", "churn")])),
            ["churn-hook"]
        );
        let churn = root.matching(&labels(&[
            ("team", "ml"),
            ("model", "churn"),
            ("feature", "f"),
        ]))[0];
        assert_eq!(churn.id, "route.routes[1].routes[0]");
        assert_eq!(churn.group_wait, Duration::from_secs(5));
        assert_eq!(churn.repeat_interval, REPEAT_INTERVAL);
        let gl = churn.group_labels(&labels(&[("feature", "f"), ("model", "churn")]));
        assert_eq!(
            churn.group_key(&gl),
            r#"route.routes[1].routes[0]:{feature="f"}"#
        );
        let pager = root.matching(&labels(&[("severity", "critical")]))[0];
        assert_eq!(pager.group_wait, Duration::from_secs(1));
        let gl = root.group_labels(&labels(&[("alertname", "A"), ("x", "1")]));
        assert_eq!(gl, labels(&[("alertname", "A")]));
        let all = tree("receiver: r\ngroup_by: ['...']\n");
        assert_eq!(
            all.group_labels(&labels(&[("x", "1")])),
            labels(&[("x", "1")])
        );
    }
}
