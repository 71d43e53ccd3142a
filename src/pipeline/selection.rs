//! Which of the account's images the user means: IDs, a name glob, tags, an age, or all.
//! A saved plan records its selection, so that `--apply-plan` asks the same question again.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::model::Image;
use crate::types::{ImageId, NameGlob, Tag};

/// Every given criterion must hold; `exclude_tags` takes images out again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Only these images (deregister: exactly these, in this order).
    pub image_ids: Vec<ImageId>,
    pub name: Option<NameGlob>,
    pub tags: Vec<Tag>,
    pub exclude_tags: Vec<Tag>,
    pub older_than: Option<SignedDuration>,
    /// Every image of the account's (still subject to the rest).
    pub all: bool,
    /// Only images whose deprecation time has come.
    #[serde(default)]
    pub deprecated: bool,
    /// Only images amictl disabled at least this long ago (and still disabled).
    #[serde(default)]
    pub disabled_for: Option<SignedDuration>,
    /// Only images not launched for this long (never launched: since their creation).
    #[serde(default)]
    pub unused_for: Option<SignedDuration>,
}

impl Selection {
    /// Exactly these images, each once, in the order given.
    pub fn of_ids(ids: &[ImageId]) -> Selection {
        Selection {
            image_ids: crate::types::each_once(ids.iter().cloned()),
            ..Selection::default()
        }
    }

    /// Whether any criterion picks images (`--orphans` alone picks none).
    pub fn selects_images(&self) -> bool {
        self.all
            || !self.image_ids.is_empty()
            || self.name.is_some()
            || !self.tags.is_empty()
            || self.older_than.is_some()
            || self.deprecated
            || self.disabled_for.is_some()
            || self.unused_for.is_some()
    }

    #[cfg(test)]
    pub fn matches(&self, image: &Image, now: Timestamp) -> bool {
        !self.pick(std::slice::from_ref(image), now).is_empty()
    }

    /// Everything but the IDs holds for the image.
    fn criteria_hold(&self, image: &Image, now: Timestamp) -> bool {
        let old_enough = self.older_than.is_none_or(|age| {
            image
                .creation_date
                .is_some_and(|created| now.duration_since(created) > age)
        });
        let disabled_long_enough = self.disabled_for.is_none_or(|age| {
            image
                .disabled_by_amictl_at()
                .is_some_and(|at| now.duration_since(at) >= age)
        });
        let unused_long_enough = self
            .unused_for
            .is_none_or(|age| image.last_used().is_some_and(|at| now.duration_since(at) >= age));
        image.name_matches(self.name.as_ref())
            && self.tags.iter().all(|t| image.has_tag(t))
            && !self.exclude_tags.iter().any(|t| image.has_tag(t))
            && old_enough
            && (!self.deprecated || image.is_deprecated(now))
            && disabled_long_enough
            && unused_long_enough
    }

    /// The images this selection picks: in the order named when IDs are given, else in the
    /// order of `images` (newest first). Linear in the images and the IDs.
    pub fn pick<'a>(&self, images: &'a [Image], now: Timestamp) -> Vec<&'a Image> {
        if !self.selects_images() {
            return Vec::new();
        }
        let named: std::collections::HashMap<&str, usize> = (self.image_ids.iter().enumerate())
            .map(|(position, id)| (id.as_str(), position))
            .collect();
        let mut picked: Vec<&Image> = images
            .iter()
            .filter(|i| named.is_empty() || named.contains_key(i.image_id.as_str()))
            .filter(|i| self.criteria_hold(i, now))
            .collect();
        if !named.is_empty() {
            picked.sort_by_key(|image| named.get(image.image_id.as_str()));
        }
        picked
    }

    /// The named images that are not among `images`.
    pub fn missing<'a>(&'a self, images: &[Image]) -> Vec<&'a str> {
        let present: std::collections::HashSet<&str> = images.iter().map(|i| i.image_id.as_str()).collect();
        self.image_ids
            .iter()
            .map(ImageId::as_str)
            .filter(|id| !present.contains(id))
            .collect()
    }

    /// The reason a selected image goes, in the user's own terms.
    pub fn reason(&self) -> String {
        let mut parts = Vec::new();
        if !self.image_ids.is_empty() {
            parts.push("named on the command line".to_owned());
        }
        if let Some(name) = &self.name {
            parts.push(format!("name matches {}", name.pattern()));
        }
        for tag in &self.tags {
            parts.push(format!("tagged {tag}"));
        }
        let human =
            |age: SignedDuration| humantime::format_duration(std::time::Duration::try_from(age).unwrap_or_default());
        if let Some(age) = self.older_than {
            parts.push(format!("older than {}", human(age)));
        }
        if self.deprecated {
            parts.push("deprecated".to_owned());
        }
        if let Some(age) = self.disabled_for {
            parts.push(format!("disabled by amictl at least {} ago", human(age)));
        }
        if let Some(age) = self.unused_for {
            parts.push(format!("not launched for {}", human(age)));
        }
        if parts.is_empty() {
            parts.push("--all".to_owned());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(older_than: Option<&str>) -> Selection {
        Selection {
            name: Some("app-*".parse().unwrap()),
            tags: vec!["env=ci".parse().unwrap()],
            exclude_tags: vec!["keep=yes".parse().unwrap()],
            older_than: older_than.map(|d| SignedDuration::try_from(humantime::parse_duration(d).unwrap()).unwrap()),
            ..Selection::default()
        }
    }

    fn image(name: &str, created: &str, tags: &[(&str, &str)]) -> Image {
        let mut image = Image::for_tests("ami-12345678");
        image.name = Some(name.to_owned());
        image.creation_date = Some(created.parse().unwrap());
        image.tags = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        image
    }

    #[test]
    fn every_criterion_must_hold_and_exclusions_win() {
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let old = "2026-01-01T00:00:00Z";
        let yesterday = "2026-05-31T00:00:00Z";
        let pick = selection(Some("30d"));

        assert!(pick.matches(&image("app-1", old, &[("env", "ci")]), now));
        assert!(
            !pick.matches(&image("app-1", yesterday, &[("env", "ci")]), now),
            "too young"
        );
        assert!(!pick.matches(&image("db-1", old, &[("env", "ci")]), now), "wrong name");
        assert!(
            !pick.matches(&image("app-1", old, &[("env", "prod")]), now),
            "wrong tag"
        );
        assert!(
            !pick.matches(&image("app-1", old, &[("env", "ci"), ("keep", "yes")]), now),
            "excluded"
        );
        assert_eq!(pick.reason(), "name matches app-*, tagged env=ci, older than 30days");
    }

    #[test]
    fn orphans_alone_select_no_image() {
        let nothing = Selection::default();
        assert!(!nothing.matches(&image("app-1", "2026-01-01T00:00:00Z", &[]), Timestamp::now()));
        let all = Selection {
            all: true,
            ..Selection::default()
        };
        assert!(all.matches(&image("app-1", "2026-01-01T00:00:00Z", &[]), Timestamp::now()));
    }

    #[test]
    fn named_images_are_picked_once_each_in_the_order_named() {
        let images = [Image::for_tests("ami-00000001"), Image::for_tests("ami-00000002")];
        let ids: Vec<ImageId> = ["ami-00000002", "ami-00000001", "ami-00000002", "ami-00000009"]
            .iter()
            .map(|id| id.parse().unwrap())
            .collect();
        let selection = Selection::of_ids(&ids);

        let picked: Vec<&str> = selection
            .pick(&images, Timestamp::now())
            .iter()
            .map(|i| i.image_id.as_str())
            .collect();

        assert_eq!(picked, ["ami-00000002", "ami-00000001"]);
        assert_eq!(selection.missing(&images), ["ami-00000009"]);
    }

    #[test]
    fn a_selection_reads_back_as_it_was_written() {
        let written = Selection {
            image_ids: vec!["ami-00000001".parse().unwrap()],
            ..selection(Some("30d"))
        };
        let json = serde_json::to_string(&written).unwrap();
        assert_eq!(serde_json::from_str::<Selection>(&json).unwrap(), written, "{json}");
    }

    #[test]
    fn stages_select_by_deprecation_by_amictl_s_disabling_and_by_last_launch() {
        let now: Timestamp = "2026-11-28T00:00:00Z".parse().unwrap();
        let hours = |h: i64| SignedDuration::from_hours(h);
        let mut old_but_launched = image("a", "2020-01-01T00:00:00Z", &[]);
        old_but_launched.last_launched_time = Some("2026-11-27T00:00:00Z".parse().unwrap());
        let old_never_launched = image("b", "2020-01-01T00:00:00Z", &[]);
        let unused = Selection {
            unused_for: Some(hours(24 * 30)),
            ..Selection::default()
        };
        assert!(!unused.matches(&old_but_launched, now), "launched yesterday");
        assert!(
            unused.matches(&old_never_launched, now),
            "never launched: counts from creation"
        );

        let mut deprecated = image("c", "2020-01-01T00:00:00Z", &[]);
        let by_deprecation = Selection {
            deprecated: true,
            ..Selection::default()
        };
        assert!(!by_deprecation.matches(&deprecated, now));
        deprecated.deprecation_time = Some("2026-12-01T00:00:00Z".parse().unwrap());
        assert!(!by_deprecation.matches(&deprecated, now), "not yet");
        deprecated.deprecation_time = Some("2026-11-01T00:00:00Z".parse().unwrap());
        assert!(by_deprecation.matches(&deprecated, now));

        let by_disabling = Selection {
            disabled_for: Some(hours(24 * 14)),
            ..Selection::default()
        };
        let mut disabled = image(
            "d",
            "2020-01-01T00:00:00Z",
            &[("amictl:disabled-at", "2026-11-01T00:00:00Z")],
        );
        assert!(!by_disabling.matches(&disabled, now), "enabled again since");
        disabled.state = Some(crate::model::ImageState::Disabled);
        assert!(by_disabling.matches(&disabled, now));
        disabled
            .tags
            .insert("amictl:disabled-at".to_owned(), "2026-11-27T00:00:00Z".to_owned());
        assert!(!by_disabling.matches(&disabled, now), "disabled a day ago");
        assert_eq!(
            by_disabling.reason(),
            "disabled by amictl at least 14days ago",
            "said in the user's terms"
        );
    }
}
