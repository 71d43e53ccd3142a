//! Publishing an image to what launches it: a launch template's new version that names it.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::RequestLaunchTemplateData;

use super::Ec2;
use super::errors::launch_template_gone;
use crate::error::Error;
use crate::types::{ImageId, LaunchTemplateRef};

/// A launch template's version, as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVersion {
    pub template_id: String,
    pub template_name: String,
    pub number: i64,
    /// The image the version launches (`None`: it names none; `resolve:ssm:…`: a parameter).
    pub image: Option<String>,
}

impl Ec2 {
    /// The template's default and latest versions (DescribeLaunchTemplateVersions with
    /// `$Default` and `$Latest`; one when they are the same). A template that doesn't exist is
    /// `NotFound`.
    pub async fn default_and_latest_versions(
        &self,
        template: &LaunchTemplateRef,
    ) -> Result<(TemplateVersion, TemplateVersion), Error> {
        let request = (self.client.describe_launch_template_versions())
            .versions("$Default")
            .versions("$Latest");
        let request = match template {
            LaunchTemplateRef::Id(id) => request.launch_template_id(id),
            LaunchTemplateRef::Name(name) => request.launch_template_name(name),
        };
        let missing = || Error::NotFound {
            what: format!("launch template {template}"),
            region: self.region.to_string(),
        };
        let output = request.send().await.map_err(|err| {
            if launch_template_gone(err.code()) {
                missing()
            } else {
                self.error("DescribeLaunchTemplateVersions", &err)
            }
        })?;
        let versions: Vec<(bool, TemplateVersion)> = (output.launch_template_versions().iter())
            .map(|version| {
                let described = TemplateVersion {
                    template_id: version.launch_template_id().unwrap_or_default().to_owned(),
                    template_name: version.launch_template_name().unwrap_or_default().to_owned(),
                    number: version.version_number().unwrap_or_default(),
                    image: (version.launch_template_data())
                        .and_then(|data| data.image_id())
                        .map(str::to_owned),
                };
                (version.default_version() == Some(true), described)
            })
            .collect();
        let default = (versions.iter().find(|(default, _)| *default))
            .ok_or_else(missing)?
            .1
            .clone();
        let latest = (versions.iter().map(|(_, v)| v).max_by_key(|v| v.number))
            .ok_or_else(missing)?
            .clone();
        Ok((default, latest))
    }

    /// A new version of the template, the source version with only the image changed
    /// (CreateLaunchTemplateVersion with `SourceVersion`); its number.
    pub async fn new_template_version(&self, source: &TemplateVersion, image: &ImageId) -> Result<i64, Error> {
        let output = self
            .client
            .create_launch_template_version()
            .launch_template_id(&source.template_id)
            .source_version(source.number.to_string())
            .version_description(format!("amictl publish {image}"))
            .launch_template_data(RequestLaunchTemplateData::builder().image_id(image.as_str()).build())
            .send()
            .await
            .map_err(|err| self.error("CreateLaunchTemplateVersion", &err))?;
        output
            .launch_template_version()
            .and_then(aws_sdk_ec2::types::LaunchTemplateVersion::version_number)
            .ok_or_else(|| Error::Failed("CreateLaunchTemplateVersion answered without a version number".to_owned()))
    }

    /// Makes a version the template's default (ModifyLaunchTemplate).
    pub async fn set_default_template_version(&self, template_id: &str, version: i64) -> Result<(), Error> {
        self.client
            .modify_launch_template()
            .launch_template_id(template_id)
            .default_version(version.to_string())
            .send()
            .await
            .map_err(|err| self.error("ModifyLaunchTemplate", &err))?;
        Ok(())
    }
}
