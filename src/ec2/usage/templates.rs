//! Launch template versions: every template's `$Latest` and `$Default`, and the versions
//! Auto Scaling groups and fleets pin by number.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use futures::StreamExt;

use super::super::Ec2;
use super::super::errors::launch_template_gone;
use super::super::pages::PageError;
use crate::error::Error;

/// Templates whose pinned versions are read at once.
const CONCURRENT_TEMPLATES: usize = 8;

/// A launch template version as a group or fleet names it: by ID or name (or both), and a
/// version number, `$Latest` or `$Default` (`None`: the default version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatePin {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
}

/// One version of a launch template and the image field it launches (an image ID, a
/// `resolve:ssm:` parameter, or empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub template_id: String,
    pub template_name: String,
    pub number: i64,
    pub default: bool,
    pub image: String,
    /// The snapshots its block device mappings create volumes from.
    pub snapshots: Vec<String>,
}

impl Version {
    /// `web (lt-…) version 3`.
    pub fn id(&self) -> String {
        format!("{} ({}) version {}", self.template_name, self.template_id, self.number)
    }

    /// `launch template web (lt-…) version 3`, as a step on the way to an image.
    pub fn label(&self) -> String {
        format!("launch template {}", self.id())
    }

    fn from_sdk(version: &aws_sdk_ec2::types::LaunchTemplateVersion) -> Version {
        Version {
            template_id: version.launch_template_id().unwrap_or_default().to_owned(),
            template_name: version.launch_template_name().unwrap_or_default().to_owned(),
            number: version.version_number().unwrap_or_default(),
            default: version.default_version().unwrap_or(false),
            image: version
                .launch_template_data()
                .and_then(|d| d.image_id())
                .unwrap_or_default()
                .to_owned(),
            snapshots: version
                .launch_template_data()
                .map(aws_sdk_ec2::types::ResponseLaunchTemplateData::block_device_mappings)
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// The launch template versions read so far, by template.
#[derive(Debug, Default)]
pub struct TemplateVersions {
    by_template: BTreeMap<String, Vec<Version>>,
    ids_by_name: BTreeMap<String, String>,
    latest: BTreeMap<String, i64>,
}

impl TemplateVersions {
    /// From the `$Latest` / `$Default` scan of every template: the highest number each
    /// template answered with is its latest.
    fn of_latest_and_default(versions: Vec<Version>) -> TemplateVersions {
        let mut known = TemplateVersions::default();
        for version in &versions {
            let latest = known
                .latest
                .entry(version.template_id.clone())
                .or_insert(version.number);
            *latest = (*latest).max(version.number);
        }
        known.with(versions)
    }

    /// Adds versions read later (pinned ones).
    #[must_use]
    pub fn with(mut self, versions: Vec<Version>) -> TemplateVersions {
        for version in versions {
            self.ids_by_name
                .insert(version.template_name.clone(), version.template_id.clone());
            let known = self.by_template.entry(version.template_id.clone()).or_default();
            if !known.iter().any(|v| v.number == version.number) {
                known.push(version);
            }
        }
        self
    }

    /// Every template's latest and default versions.
    pub fn latest_and_default(&self) -> impl Iterator<Item = &Version> {
        self.by_template.iter().flat_map(|(id, versions)| {
            let latest = self.latest.get(id).copied();
            versions.iter().filter(move |v| v.default || Some(v.number) == latest)
        })
    }

    fn template_id<'a>(&'a self, pin: &'a TemplatePin) -> Option<&'a str> {
        match (&pin.id, &pin.name) {
            (Some(id), _) => Some(id),
            (None, Some(name)) => self.ids_by_name.get(name).map(String::as_str),
            (None, None) => None,
        }
    }

    /// The version a pin names, if the template and version exist.
    pub fn resolve(&self, pin: &TemplatePin) -> Option<&Version> {
        let id = self.template_id(pin)?;
        let versions = self.by_template.get(id)?;
        match pin.version.as_deref().unwrap_or("$Default") {
            "$Latest" => {
                let latest = self.latest.get(id)?;
                versions.iter().find(|v| v.number == *latest)
            }
            "$Default" => versions.iter().find(|v| v.default),
            number => {
                let number: i64 = number.parse().ok()?;
                versions.iter().find(|v| v.number == number)
            }
        }
    }

    /// The numbered versions pins name that are not read yet, by template ID.
    pub fn missing<'a>(&self, pins: impl Iterator<Item = &'a TemplatePin>) -> BTreeMap<String, BTreeSet<i64>> {
        let mut missing: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for pin in pins {
            let Some(number) = pin.version.as_deref().and_then(|v| v.parse::<i64>().ok()) else {
                continue;
            };
            // A template the all-templates scan didn't see doesn't exist: nothing to launch.
            let Some(id) = self.template_id(pin) else {
                continue;
            };
            if !self.by_template.contains_key(id) {
                continue;
            }
            if self.resolve(pin).is_none() {
                missing.entry(id.to_owned()).or_default().insert(number);
            }
        }
        missing
    }
}

impl Ec2 {
    /// The default and latest versions of every launch template.
    pub(super) async fn latest_and_default_template_versions(&self) -> Result<TemplateVersions, Error> {
        // No template ID and the two version aliases: EC2's way of asking for all templates.
        let mut pages = std::pin::pin!(self.pages(
            |token| {
                (self.ec2().describe_launch_template_versions())
                    .versions("$Latest")
                    .versions("$Default")
                    .max_results(200)
                    .set_next_token(token)
                    .send()
            },
            aws_sdk_ec2::operation::describe_launch_template_versions::DescribeLaunchTemplateVersionsOutput::next_token,
        ));
        let mut versions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("DescribeLaunchTemplateVersions", &err))?;
            versions.extend(page.launch_template_versions().iter().map(Version::from_sdk));
        }
        Ok(TemplateVersions::of_latest_and_default(versions))
    }

    /// The given versions of these templates: one paginated read per template. A version or
    /// template that no longer exists launches nothing and is left out.
    pub(super) async fn template_versions(
        &self,
        wanted: &BTreeMap<String, BTreeSet<i64>>,
    ) -> Result<Vec<Version>, Error> {
        let reads = futures::stream::iter(wanted.clone())
            .map(|(template, numbers)| async move { self.versions_of(&template, &numbers).await })
            .buffer_unordered(CONCURRENT_TEMPLATES)
            .collect::<Vec<_>>()
            .await;
        let mut versions = Vec::new();
        for read in reads {
            versions.extend(read?);
        }
        Ok(versions)
    }

    async fn versions_of(&self, template: &str, numbers: &BTreeSet<i64>) -> Result<Vec<Version>, Error> {
        match self.read_versions(template, numbers).await {
            Err(Gone::Version) if numbers.len() > 1 => {
                // EC2 refuses the whole read for one missing version: read them one by one.
                let mut versions = Vec::new();
                for number in numbers {
                    match self.read_versions(template, &BTreeSet::from([*number])).await {
                        Ok(found) => versions.extend(found),
                        Err(Gone::Version | Gone::Template) => {}
                        Err(Gone::Other(err)) => return Err(err),
                    }
                }
                Ok(versions)
            }
            Ok(versions) => Ok(versions),
            Err(Gone::Version | Gone::Template) => Ok(Vec::new()),
            Err(Gone::Other(err)) => Err(err),
        }
    }

    async fn read_versions(&self, template: &str, numbers: &BTreeSet<i64>) -> Result<Vec<Version>, Gone> {
        let mut pages = std::pin::pin!(self.pages(
            |token| {
                (self.ec2().describe_launch_template_versions())
                    .launch_template_id(template)
                    .set_versions(Some(numbers.iter().map(ToString::to_string).collect()))
                    .max_results(200)
                    .set_next_token(token)
                    .send()
            },
            aws_sdk_ec2::operation::describe_launch_template_versions::DescribeLaunchTemplateVersionsOutput::next_token,
        ));
        let mut versions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| match &err {
                PageError::Refused(refused) => match refused.code() {
                    Some("InvalidLaunchTemplateId.VersionNotFound") => Gone::Version,
                    code if launch_template_gone(code) => Gone::Template,
                    _ => Gone::Other(self.error("DescribeLaunchTemplateVersions", refused)),
                },
                PageError::Repeated(_) => Gone::Other(self.page_error("DescribeLaunchTemplateVersions", &err)),
            })?;
            versions.extend(page.launch_template_versions().iter().map(Version::from_sdk));
        }
        Ok(versions)
    }
}

/// Why a read of template versions found nothing.
enum Gone {
    Version,
    Template,
    Other(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(template: &str, number: i64, default: bool, image: &str) -> Version {
        Version {
            template_id: format!("lt-{template}"),
            template_name: template.to_owned(),
            number,
            default,
            image: image.to_owned(),
            snapshots: Vec::new(),
        }
    }

    fn pin(name: &str, version: Option<&str>) -> TemplatePin {
        TemplatePin {
            id: None,
            name: Some(name.to_owned()),
            version: version.map(str::to_owned),
        }
    }

    #[test]
    fn pins_resolve_to_latest_default_or_a_numbered_version() {
        let known = TemplateVersions::of_latest_and_default(vec![
            version("web", 3, false, "ami-00000003"),
            version("web", 2, true, "ami-00000002"),
        ]);

        let image = |known: &TemplateVersions, version: Option<&str>| {
            known.resolve(&pin("web", version)).map(|v| v.image.clone())
        };
        assert_eq!(image(&known, Some("$Latest")).as_deref(), Some("ami-00000003"));
        assert_eq!(image(&known, Some("$Default")).as_deref(), Some("ami-00000002"));
        assert_eq!(
            image(&known, None).as_deref(),
            Some("ami-00000002"),
            "no version: the default"
        );
        assert_eq!(image(&known, Some("1")), None, "not read yet");
        assert_eq!(
            known.missing([pin("web", Some("1")), pin("web", Some("3")), pin("gone", Some("1"))].iter()),
            BTreeMap::from([("lt-web".to_owned(), BTreeSet::from([1]))]),
            "version 3 is known, a template nobody has launches nothing"
        );

        let known = known.with(vec![version("web", 1, false, "ami-00000001")]);
        assert_eq!(image(&known, Some("1")).as_deref(), Some("ami-00000001"));
        let latest_and_default: Vec<i64> = known.latest_and_default().map(|v| v.number).collect();
        assert_eq!(latest_and_default, [3, 2], "a pinned version is not a template's own");
    }
}
