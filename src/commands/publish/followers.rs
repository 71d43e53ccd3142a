//! Who picks a publication up: of the launchers the usage map's scans found, those whose path
//! leads to the new image after the change, and those that stay (a pinned version, another
//! label). Pure: the reads are `Ec2::launch_paths`.

use serde::Serialize;

use crate::ec2::{LaunchPaths, TemplatePin};
use crate::model::ImageUser;
use crate::types::{ParameterLabel, ParameterName};

/// The launchers of one template or parameter, split by whether they follow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Followers {
    /// Launch the new image from now on.
    pub follow: Vec<ImageUser>,
    /// Keep launching what they did: a version or label pinned.
    pub stay: Vec<ImageUser>,
}

/// A launch template after the change (or after it, were it made: a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateAfter<'a> {
    pub template_id: &'a str,
    pub template_name: &'a str,
    pub default: i64,
    pub latest: i64,
    /// The version that names the new image.
    pub naming: i64,
}

/// The groups and fleets that name the template: they follow where the version they name
/// (`$Default`, `$Latest` or a number) is the one naming the image.
pub fn of_template(paths: &LaunchPaths, after: &TemplateAfter<'_>) -> Followers {
    let mut followers = Followers::default();
    for (pin, user) in &paths.pins {
        if !names_template(pin, after) {
            continue;
        }
        let asked = pin.version.as_deref().unwrap_or("$Default");
        let version = match asked {
            "$Default" => Some(after.default),
            "$Latest" => Some(after.latest),
            number => number.parse().ok(),
        };
        let user = user
            .clone()
            .via(format!("launch template {} version {asked}", after.template_name));
        if version == Some(after.naming) {
            followers.follow.push(user);
        } else {
            followers.stay.push(user);
        }
    }
    followers.sorted()
}

fn names_template(pin: &TemplatePin, after: &TemplateAfter<'_>) -> bool {
    match (&pin.id, &pin.name) {
        (Some(id), _) => id == after.template_id,
        (None, Some(name)) => name == after.template_name,
        (None, None) => false,
    }
}

/// The launch template versions (and the groups and fleets through them) whose image is
/// `resolve:ssm:` the parameter: the bare name and the label moved follow; another label, or a
/// version other than the new one, stays.
pub fn of_parameter(
    paths: &LaunchPaths,
    name: &ParameterName,
    label: Option<&ParameterLabel>,
    version: Option<i64>,
) -> Followers {
    let mut followers = Followers::default();
    for (field, user) in &paths.fields {
        let Some((named, selector)) = field.strip_prefix("resolve:ssm:").and_then(parameter_of) else {
            continue;
        };
        if named != name.as_str().trim_start_matches('/') {
            continue;
        }
        let follows = match selector {
            None => true,
            Some(selector) => match selector.parse::<i64>() {
                Ok(number) => Some(number) == version,
                Err(_) => label.is_some_and(|label| label.as_str() == selector),
            },
        };
        let user = user
            .clone()
            .via(format!("SSM parameter {}", field.trim_start_matches("resolve:ssm:")));
        if follows {
            followers.follow.push(user);
        } else {
            followers.stay.push(user);
        }
    }
    followers.sorted()
}

/// A `resolve:ssm:` reference's parameter (without a leading `/`, as an ARN's resource holds
/// it) and its `:version` or `:label`, if any.
fn parameter_of(reference: &str) -> Option<(&str, Option<&str>)> {
    let name = match reference.strip_prefix("arn:") {
        Some(arn) => arn.split_once(":parameter")?.1,
        None => reference,
    };
    let name = name.trim_start_matches('/');
    Some(match name.split_once(':') {
        Some((name, selector)) => (name, Some(selector)),
        None => (name, None),
    })
}

impl Followers {
    fn sorted(mut self) -> Followers {
        self.follow.sort();
        self.follow.dedup();
        self.stay.sort();
        self.stay.dedup();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserKind;

    fn pin(id: Option<&str>, name: Option<&str>, version: Option<&str>) -> TemplatePin {
        TemplatePin {
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            version: version.map(str::to_owned),
        }
    }

    fn group(name: &str) -> ImageUser {
        ImageUser::new(UserKind::AutoScalingGroup, name)
    }

    fn ids(users: &[ImageUser]) -> Vec<&str> {
        users.iter().map(|u| u.id.as_str()).collect()
    }

    #[test]
    fn groups_on_the_default_or_latest_follow_a_new_default_and_pinned_ones_stay() {
        let paths = LaunchPaths {
            fields: Vec::new(),
            pins: vec![
                (pin(Some("lt-1"), None, Some("$Default")), group("on-default")),
                (pin(None, Some("web"), None), group("by-name")),
                (pin(Some("lt-1"), None, Some("$Latest")), group("on-latest")),
                (pin(Some("lt-1"), None, Some("2")), group("pinned")),
                (pin(Some("lt-9"), None, None), group("another-template")),
            ],
        };
        let after = TemplateAfter {
            template_id: "lt-1",
            template_name: "web",
            default: 3,
            latest: 3,
            naming: 3,
        };
        let followers = of_template(&paths, &after);
        assert_eq!(ids(&followers.follow), ["by-name", "on-default", "on-latest"]);
        assert_eq!(ids(&followers.stay), ["pinned"]);
        assert_eq!(
            followers.stay[0].to_string(),
            "Auto Scaling group pinned through launch template web version 2"
        );

        let not_default = TemplateAfter { default: 2, ..after };
        let followers = of_template(&paths, &not_default);
        assert_eq!(
            ids(&followers.follow),
            ["on-latest"],
            "--no-default: only $Latest moves"
        );
        assert_eq!(ids(&followers.stay), ["by-name", "on-default", "pinned"]);
    }

    #[test]
    fn templates_resolving_the_parameter_follow_unless_pinned_to_another_version_or_label() {
        let template = |n: &str| ImageUser::new(UserKind::LaunchTemplate, n);
        let paths = LaunchPaths {
            fields: vec![
                ("resolve:ssm:/golden/web".to_owned(), template("bare")),
                ("resolve:ssm:/golden/web:prod".to_owned(), template("label")),
                ("resolve:ssm:/golden/web:test".to_owned(), template("other-label")),
                ("resolve:ssm:/golden/web:4".to_owned(), template("new-version")),
                ("resolve:ssm:/golden/web:1".to_owned(), template("old-version")),
                (
                    "resolve:ssm:arn:aws:ssm:eu-west-1:123456789012:parameter/golden/web".to_owned(),
                    template("arn"),
                ),
                ("resolve:ssm:/golden/webby".to_owned(), template("another")),
                ("ami-0123456789abcdef0".to_owned(), template("an-image")),
            ],
            pins: Vec::new(),
        };
        let name: ParameterName = "/golden/web".parse().unwrap();
        let label: ParameterLabel = "prod".parse().unwrap();
        let followers = of_parameter(&paths, &name, Some(&label), Some(4));
        assert_eq!(ids(&followers.follow), ["arn", "bare", "label", "new-version"]);
        assert_eq!(ids(&followers.stay), ["old-version", "other-label"]);
        let without_label = of_parameter(&paths, &name, None, Some(4));
        assert!(
            ids(&without_label.stay).contains(&"label"),
            "the label stays where it was"
        );
    }
}
