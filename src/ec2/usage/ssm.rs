//! SSM parameters that name images: those of data type `aws:ec2:image` (a "golden image"
//! pointer others launch through), and those launch templates resolve (`resolve:ssm:NAME`).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::ParameterStringFilter;

use super::super::Ec2;
use super::super::publish::IMAGE_DATA_TYPE;
use crate::error::Error;
use futures::StreamExt as _;

/// GetParameters takes at most this many names.
const NAMES_PER_READ: usize = 10;

/// What a parameter named: an image ID, or why it can't be told.
pub type Resolved = BTreeMap<String, Result<String, String>>;

impl Ec2 {
    /// Every parameter of data type `aws:ec2:image` and the image it names; those that could
    /// not be read come back as `Err`.
    pub(super) async fn image_parameters(&self) -> Result<Resolved, Error> {
        let names = match self.parameter_names(true).await {
            // Not every endpoint filters on the data type (moto refuses the filter): list
            // them all then, and pick by data type here.
            Err(Error::Aws { code, .. }) if code == "ValidationException" => self.parameter_names(false).await?,
            other => other?,
        };
        let names: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        self.resolve_parameters(&names).await
    }

    async fn parameter_names(&self, filter_on_server: bool) -> Result<Vec<String>, Error> {
        let mut request = self.ssm().describe_parameters();
        if filter_on_server {
            request = request.parameter_filters(
                ParameterStringFilter::builder()
                    .key("DataType")
                    .option("Equals")
                    .values(IMAGE_DATA_TYPE)
                    .build()
                    .expect("key is set"),
            );
        }
        let mut pages = std::pin::pin!(self.pages(
            |token| request.clone().max_results(50).set_next_token(token).send(),
            aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput::next_token,
        ));
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.page_error("ssm:DescribeParameters", &err))?;
            names.extend(
                page.parameters()
                    .iter()
                    .filter(|p| p.data_type() == Some(IMAGE_DATA_TYPE))
                    .filter_map(|p| p.name())
                    .map(str::to_owned),
            );
        }
        Ok(names)
    }

    /// What each parameter (a name or ARN, with an optional `:version` or `:label`) holds,
    /// read ten at a time.
    pub(super) async fn resolve_parameters(&self, names: &BTreeSet<&str>) -> Result<Resolved, Error> {
        let names: Vec<&str> = names.iter().copied().collect();
        let reads = (names.chunks(NAMES_PER_READ).map(<[&str]>::to_vec))
            .map(|chunk| async move { self.read_parameters(&chunk).await });
        let mut resolved = Resolved::new();
        for read in futures::future::try_join_all(reads).await? {
            resolved.extend(read);
        }
        Ok(resolved)
    }

    async fn read_parameters(&self, names: &[&str]) -> Result<Resolved, Error> {
        let result = self
            .ssm()
            .get_parameters()
            .set_names(Some(names.iter().map(|n| (*n).to_owned()).collect()))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            // A name SSM refuses to look up (malformed): none of the ten can be told.
            Err(err) if err.code() == Some("ValidationException") => {
                let why = format!(
                    "SSM refused to look it up ({})",
                    err.message().unwrap_or("ValidationException")
                );
                return Ok(names.iter().map(|n| ((*n).to_owned(), Err(why.clone()))).collect());
            }
            Err(err) => return Err(self.error("ssm:GetParameters", &err)),
        };
        // A parameter answers to its name and its ARN, each with the selector asked for.
        let mut values: BTreeMap<String, &str> = BTreeMap::new();
        for parameter in output.parameters() {
            let selector = parameter.selector().unwrap_or_default();
            let value = parameter.value().unwrap_or_default();
            for key in [parameter.name(), parameter.arn()].into_iter().flatten() {
                values.insert(format!("{key}{selector}"), value);
            }
        }
        let invalid: BTreeSet<&str> = output.invalid_parameters().iter().map(String::as_str).collect();
        Ok(names
            .iter()
            .map(|name| {
                let found = match values.get(*name) {
                    Some(value) => Ok((*value).to_owned()),
                    None if invalid.contains(name) => {
                        Err("it does not exist, or is not shared with this account".to_owned())
                    }
                    None => Err("SSM did not answer for it".to_owned()),
                };
                ((*name).to_owned(), found)
            })
            .collect())
    }
}
