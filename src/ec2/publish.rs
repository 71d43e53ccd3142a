//! Publishing an image to what launches it: a launch template's new version that names it, an
//! SSM parameter's new value.

use std::time::Duration;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::RequestLaunchTemplateData;

use super::Ec2;
use super::errors::launch_template_gone;
use crate::error::Error;
use crate::types::{ImageId, LaunchTemplateRef, ParameterLabel, ParameterName};

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
        let request = (self.ec2().describe_launch_template_versions())
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
            .ec2()
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
        self.ec2()
            .modify_launch_template()
            .launch_template_id(template_id)
            .default_version(version.to_string())
            .send()
            .await
            .map_err(|err| self.error("ModifyLaunchTemplate", &err))?;
        Ok(())
    }
}

/// The data type of parameters that hold an AMI ID (SSM checks the value is an image).
pub const IMAGE_DATA_TYPE: &str = "aws:ec2:image";

/// An SSM parameter as GetParameters reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterNow {
    pub value: String,
    pub version: i64,
    /// `String`, `StringList` or `SecureString`.
    pub kind: Option<String>,
    /// `text`, `aws:ec2:image`, …
    pub data_type: Option<String>,
    /// The version that carries the label asked about, if one does.
    pub labelled: Option<i64>,
}

/// How a parameter ended after PutParameter, which for `aws:ec2:image` answers before SSM has
/// checked the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The version written reads back with the value.
    Took,
    /// A later version, another writer's, reads back with another value.
    Superseded { version: i64, value: String },
    /// The version written never showed within the bound: SSM's check refused the value (or is
    /// slower than the bound).
    NotTaken { version: Option<i64> },
}

/// How often, and how long, to look for a parameter's new version.
#[derive(Debug, Clone, Copy)]
pub struct SettleWait {
    pub first: Duration,
    pub within: Duration,
}

impl Default for SettleWait {
    /// SSM documents no time for its check; a minute is far beyond what it takes, and the wait
    /// doubles from a fifth of a second to two seconds.
    fn default() -> SettleWait {
        SettleWait {
            first: Duration::from_millis(200),
            within: Duration::from_mins(1),
        }
    }
}

impl Ec2 {
    /// The parameter as it is now and, with a label, the version carrying it (one
    /// GetParameters for `NAME` and `NAME:LABEL`); `None`: there is no such parameter.
    pub async fn image_parameter_now(
        &self,
        name: &ParameterName,
        label: Option<&ParameterLabel>,
    ) -> Result<Option<ParameterNow>, Error> {
        let mut request = self.ssm().get_parameters().names(name.as_str());
        if let Some(label) = label {
            request = request.names(format!("{name}:{label}"));
        }
        let output = request
            .send()
            .await
            .map_err(|err| self.error("ssm:GetParameters", &err))?;
        let mut now: Option<ParameterNow> = None;
        let mut labelled = None;
        for parameter in output.parameters() {
            if parameter.name() != Some(name.as_str()) {
                continue;
            }
            match parameter.selector().filter(|s| !s.is_empty()) {
                None => {
                    now = Some(ParameterNow {
                        value: parameter.value().unwrap_or_default().to_owned(),
                        version: parameter.version(),
                        kind: parameter.r#type().map(|t| t.as_str().to_owned()),
                        data_type: parameter.data_type().map(str::to_owned),
                        labelled: None,
                    });
                }
                Some(_) => labelled = Some(parameter.version()),
            }
        }
        Ok(now.map(|now| ParameterNow { labelled, ..now }))
    }

    /// Writes the image to the parameter (PutParameter, data type `aws:ec2:image`, made if
    /// missing, overwritten otherwise); the version SSM says it will be.
    pub async fn put_image_parameter(&self, name: &ParameterName, image: &ImageId) -> Result<i64, Error> {
        let output = self
            .ssm()
            .put_parameter()
            .name(name.as_str())
            .value(image.as_str())
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .data_type(IMAGE_DATA_TYPE)
            .overwrite(true)
            .send()
            .await
            .map_err(|err| self.error("ssm:PutParameter", &err))?;
        Ok(output.version())
    }

    /// Looks (GetParameter, doubling waits) until the version written reads back, a later one
    /// supersedes it, or `wait.within` has passed.
    pub async fn settled_parameter(
        &self,
        name: &ParameterName,
        version: i64,
        image: &ImageId,
        wait: SettleWait,
    ) -> Result<Settled, Error> {
        let started = tokio::time::Instant::now();
        let mut pause = wait.first;
        let mut seen = None;
        loop {
            match self.ssm().get_parameter().name(name.as_str()).send().await {
                Ok(output) => {
                    let parameter = output.parameter();
                    let found = parameter.map_or(0, aws_sdk_ssm::types::Parameter::version);
                    let value = parameter.and_then(|p| p.value()).unwrap_or_default();
                    seen = Some(found);
                    if found == version && value == image.as_str() {
                        return Ok(Settled::Took);
                    }
                    if found > version {
                        return Ok(Settled::Superseded {
                            version: found,
                            value: value.to_owned(),
                        });
                    }
                }
                // A parameter being made shows only once SSM has checked its value.
                Err(err) if err.code() == Some("ParameterNotFound") => {}
                Err(err) => return Err(self.error("ssm:GetParameter", &err)),
            }
            if started.elapsed() + pause > wait.within {
                return Ok(Settled::NotTaken { version: seen });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Moves the label to the version (LabelParameterVersion; SSM takes it off any other).
    pub async fn label_parameter(
        &self,
        name: &ParameterName,
        version: i64,
        label: &ParameterLabel,
    ) -> Result<(), Error> {
        let output = self
            .ssm()
            .label_parameter_version()
            .name(name.as_str())
            .parameter_version(version)
            .labels(label.as_str())
            .send()
            .await
            .map_err(|err| self.error("ssm:LabelParameterVersion", &err))?;
        // SSM answers a label it won't attach in InvalidLabels, not as an error.
        if output.invalid_labels().iter().any(|l| l == label.as_str()) {
            return Err(Error::Failed(format!(
                "SSM would not attach label {label} to version {version} of {name}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! What moto can't do: refuse an `aws:ec2:image` value after PutParameter answered (it
    //! checks nothing), or answer a label it won't attach. Shaped from the SSM API reference.

    use std::time::Duration;

    use aws_sdk_ssm::Client;
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::operation::label_parameter_version::LabelParameterVersionOutput;
    use aws_sdk_ssm::types::Parameter;
    use aws_smithy_mocks::{RuleMode, mock};

    use super::{SettleWait, Settled};
    use crate::ec2::mock::mock_ec2;
    use crate::types::{ImageId, ParameterName};

    const NEW: &str = "ami-0123456789abcdef0";

    fn reading(version: i64, value: &'static str) -> aws_smithy_mocks::Rule {
        mock!(Client::get_parameter).then_output(move || {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name("/golden/web")
                        .value(value)
                        .version(version)
                        .build(),
                )
                .build()
        })
    }

    async fn settle(rule: &aws_smithy_mocks::Rule) -> Settled {
        let ec2 = mock_ec2(RuleMode::MatchAny, &[rule]);
        let wait = SettleWait {
            first: Duration::from_millis(1),
            within: Duration::from_millis(50),
        };
        let name: ParameterName = "/golden/web".parse().unwrap();
        let image: ImageId = NEW.parse().unwrap();
        ec2.settled_parameter(&name, 3, &image, wait).await.unwrap()
    }

    #[tokio::test]
    async fn a_value_ssm_dropped_is_not_taken_and_a_later_writer_is_named() {
        assert_eq!(settle(&reading(3, NEW)).await, Settled::Took);
        assert_eq!(
            settle(&reading(2, "ami-0fedcba9876543210")).await,
            Settled::NotTaken { version: Some(2) },
            "version 3 never shows: SSM refused the image"
        );
        assert_eq!(
            settle(&reading(4, "ami-0fedcba9876543210")).await,
            Settled::Superseded {
                version: 4,
                value: "ami-0fedcba9876543210".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn a_label_ssm_answers_as_invalid_is_a_failure() {
        let rule = mock!(Client::label_parameter_version).then_output(|| {
            LabelParameterVersionOutput::builder()
                .invalid_labels("prod")
                .parameter_version(3)
                .build()
        });
        let ec2 = mock_ec2(RuleMode::MatchAny, &[&rule]);
        let err = ec2
            .label_parameter(&"/golden/web".parse().unwrap(), 3, &"prod".parse().unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("would not attach label prod"), "{err}");
    }
}
