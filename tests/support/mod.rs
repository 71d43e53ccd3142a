//! The test harness: moto's EC2 server on 127.0.0.1, fixtures made through the SDK against
//! it, and a builder that runs the amictl binary the way a user would.
//!
//! Each test takes a [`TestEnv`]: a region of its own on a shared moto server, so that no test
//! sees another's images while the suite pays for one server start, not one per test.
#![allow(dead_code)] // each test file uses its own subset

pub mod metadata;
pub mod proxy;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

/// Regions moto serves; a server's state is separate per region.
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "sa-east-1",
    "me-south-1",
    "af-south-1",
    "ap-east-1",
];

/// Starts moto, with the image stages it lacks (tests/support/moto_stages.py), and stops it
/// when the test process ends, however it ends: moto's stdin is a pipe from this process, and
/// a thread in moto exits when it closes.
const MOTO_LAUNCHER: &str = "\
import os, sys, threading
def watch():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.path.insert(0, os.environ['AMICTL_TEST_SUPPORT'])
import moto_stages
from moto.server import main
main(sys.argv[1:])
";

/// A moto server on 127.0.0.1.
pub struct Moto {
    pub url: String,
    _child: Child,
    _stdin: ChildStdin,
}

impl Moto {
    /// Starts a server; `default_amis` loads moto's ~1,300 public Amazon images.
    fn start(default_amis: bool) -> Moto {
        let python = python();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&python)
                .args(["-c", MOTO_LAUNCHER, "-H", "127.0.0.1", "-p", &port.to_string()])
                .env(
                    "AMICTL_TEST_SUPPORT",
                    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support"),
                )
                .env(
                    "MOTO_EC2_LOAD_DEFAULT_AMIS",
                    if default_amis { "true" } else { "false" },
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}", python.display()));
            let stdin = child.stdin.take().expect("piped stdin");
            let url = format!("http://127.0.0.1:{port}");
            if wait_until_ready(port, &mut child) {
                return Moto {
                    url,
                    _child: child,
                    _stdin: stdin,
                };
            }
            let _ = child.kill();
        }
        panic!("moto did not start on 127.0.0.1 after 3 tries");
    }
}

pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("AMICTL_TEST_PYTHON") {
        return python.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/test, which creates .venv with moto[server]",
        venv.display()
    );
    venv
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// Ready when `GET /moto-api/` answers 200.
fn wait_until_ready(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_mins(1);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut status = String::new();
                if BufReader::new(&mut stream).read_line(&mut status).is_ok() && status.contains(" 200") {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// One test's corner of a moto server: a region nobody else uses.
pub struct TestEnv {
    pub endpoint: String,
    pub region: String,
    /// Fixtures are made in this role's account (moto's STS), not the default one.
    pub role: Option<String>,
}

/// Servers without moto's public images, started as tests need regions.
static CLEAN_SERVERS: Mutex<Vec<&'static Moto>> = Mutex::new(Vec::new());
static NEXT_REGION: AtomicUsize = AtomicUsize::new(0);
static AMAZON_SERVER: OnceLock<Moto> = OnceLock::new();

impl TestEnv {
    /// A fresh region on a server with no images but the test's own.
    pub fn new() -> TestEnv {
        let n = NEXT_REGION.fetch_add(1, Ordering::SeqCst);
        let (server, region) = (n / REGIONS.len(), REGIONS[n % REGIONS.len()]);
        let endpoint = {
            let mut servers = CLEAN_SERVERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while servers.len() <= server {
                servers.push(Box::leak(Box::new(Moto::start(false))));
            }
            servers[server].url.clone()
        };
        TestEnv {
            endpoint,
            region: region.to_owned(),
            role: None,
        }
    }

    /// A server of its own, for a test that touches every region (`--all-regions`): moto
    /// sets a region up on first use, slowly, and the other tests need not wait for that.
    pub fn on_its_own_server() -> TestEnv {
        let moto: &'static Moto = Box::leak(Box::new(Moto::start(false)));
        TestEnv {
            endpoint: moto.url.clone(),
            region: REGIONS[0].to_owned(),
            role: None,
        }
    }

    /// The same server, in another region: one that no other test uses, named by the caller.
    pub fn in_region(&self, region: &str) -> TestEnv {
        assert!(!REGIONS.contains(&region), "{region} is handed out to other tests");
        TestEnv {
            endpoint: self.endpoint.clone(),
            region: region.to_owned(),
            role: None,
        }
    }

    /// The same server in any region: for a test with a server of its own
    /// ([`TestEnv::on_its_own_server`]), where no other test can be disturbed.
    pub fn elsewhere(&self, region: &str) -> TestEnv {
        TestEnv {
            endpoint: self.endpoint.clone(),
            region: region.to_owned(),
            role: self.role.clone(),
        }
    }

    /// An organization on this server (the caller's account its management account) with
    /// member accounts of these names: their IDs and names, in the order given.
    pub fn organization(&self, names: &[&str]) -> Vec<(String, String)> {
        let config = block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&self.endpoint)
                .credentials_provider(test_credentials())
                .load(),
        );
        let client = aws_sdk_organizations::Client::new(&config);
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        block_on(async move {
            client
                .create_organization()
                .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
                .send()
                .await
                .expect("CreateOrganization");
            let mut accounts = Vec::new();
            for name in names {
                let created = client
                    .create_account()
                    .account_name(&name)
                    .email(format!("{name}@example.com"))
                    .send()
                    .await
                    .expect("CreateAccount");
                let id = created
                    .create_account_status()
                    .and_then(|s| s.account_id())
                    .expect("the new account's ID")
                    .to_owned();
                accounts.push((id, name));
            }
            accounts
        })
    }

    /// A server with moto's public Amazon images (one of them instance-store-backed).
    pub fn with_amazon_images() -> TestEnv {
        let moto = AMAZON_SERVER.get_or_init(|| Moto::start(true));
        TestEnv {
            endpoint: moto.url.clone(),
            region: "us-east-1".to_owned(),
            role: None,
        }
    }

    /// amictl, pointed at this server and region with dummy credentials.
    pub fn amictl(&self) -> Amictl {
        TestEnv::amictl_at(&self.endpoint).env("AWS_REGION", &self.region)
    }

    /// [`TestEnv::amictl`] with every service's requests through `proxy` (EC2's endpoint, and
    /// STS', Organizations', Auto Scaling's and SSM's, which follow `AWS_ENDPOINT_URL`).
    pub fn through(&self, proxy: &proxy::Proxy) -> Amictl {
        self.amictl().env("AWS_ENDPOINT_URL", proxy.url())
    }

    /// The JSON amictl prints for `args` (`-o json` added), which must exit 0.
    pub fn json_of(&self, args: &[&str]) -> serde_json::Value {
        self.amictl()
            .args(args)
            .args(["-o", "json"])
            .run()
            .assert_code(0)
            .json()
    }

    /// amictl, pointed at any endpoint in us-east-1 with dummy credentials.
    pub fn amictl_at(endpoint: &str) -> Amictl {
        Amictl::new()
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDAMICTLTEST")
            .env("AWS_SECRET_ACCESS_KEY", "amictl-test-secret")
    }

    /// The same server and region, with fixtures made in the account of `role` (an IAM role
    /// ARN that moto's STS lets anyone assume).
    pub fn as_role(&self, role: &str) -> TestEnv {
        TestEnv {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            role: Some(role.to_owned()),
        }
    }

    /// An SDK client for making fixtures in this test's region (and role's account).
    pub fn client(&self) -> Client {
        if let Some(role) = &self.role {
            let base = block_on(
                aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(self.region.clone()))
                    .endpoint_url(&self.endpoint)
                    .credentials_provider(test_credentials())
                    .load(),
            );
            let assumed = block_on(
                aws_config::sts::AssumeRoleProvider::builder(role.clone())
                    .session_name("fixtures")
                    .configure(&base)
                    .build(),
            );
            let config = aws_sdk_ec2::config::Builder::from(&base)
                .credentials_provider(assumed)
                .build();
            return Client::from_conf(config);
        }
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(test_credentials())
            .build();
        Client::from_conf(config)
    }

    /// Launches an instance (EBS-backed, as moto's are) and returns its ID.
    pub fn run_instance(&self, name: Option<&str>) -> String {
        let client = self.client();
        block_on(async move {
            let mut request = client
                .run_instances()
                .image_id("ami-12345678")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .min_count(1)
                .max_count(1);
            if let Some(name) = name {
                request = request.tag_specifications(tags(ResourceType::Instance, &[("Name", name)]));
            }
            let output = request.send().await.expect("RunInstances");
            output.instances()[0].instance_id().unwrap().to_owned()
        })
    }

    /// Creates an image of the instance with the given name and tags; returns its ID.
    pub fn create_image(&self, instance_id: &str, name: &str, image_tags: &[(&str, &str)]) -> String {
        let client = self.client();
        let (instance_id, name) = (instance_id.to_owned(), name.to_owned());
        let image_tags: Vec<(String, String)> = image_tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        block_on(async move {
            let mut request = client.create_image().instance_id(instance_id).name(name);
            if !image_tags.is_empty() {
                let pairs: Vec<(&str, &str)> = image_tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                request = request.tag_specifications(tags(ResourceType::Image, &pairs));
            }
            request
                .send()
                .await
                .expect("CreateImage")
                .image_id()
                .unwrap()
                .to_owned()
        })
    }

    /// Launches an instance from one of the test's images.
    pub fn run_instance_from(&self, image_id: &str) -> String {
        let client = self.client();
        let image_id = image_id.to_owned();
        block_on(async move {
            let output = client
                .run_instances()
                .image_id(image_id)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .min_count(1)
                .max_count(1)
                .send()
                .await
                .expect("RunInstances");
            output.instances()[0].instance_id().unwrap().to_owned()
        })
    }

    /// A launch template whose default version names the image (or `resolve:ssm:…`); its ID.
    pub fn create_launch_template(&self, name: &str, image_id: &str) -> String {
        let client = self.client();
        let (name, image_id) = (name.to_owned(), image_id.to_owned());
        block_on(async move {
            client
                .create_launch_template()
                .launch_template_name(name)
                .launch_template_data(
                    aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                        .image_id(image_id)
                        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                        .build(),
                )
                .send()
                .await
                .expect("CreateLaunchTemplate")
                .launch_template()
                .and_then(|t| t.launch_template_id())
                .expect("a template ID")
                .to_owned()
        })
    }

    /// A launch template whose image is `image_id` and whose block device mapping creates a
    /// second volume from `snapshot_id` (a snapshot some other image was made with).
    pub fn create_launch_template_with_snapshot(&self, name: &str, image_id: &str, snapshot_id: &str) -> String {
        let client = self.client();
        let (name, image_id, snapshot_id) = (name.to_owned(), image_id.to_owned(), snapshot_id.to_owned());
        block_on(async move {
            client
                .create_launch_template()
                .launch_template_name(name)
                .launch_template_data(
                    aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                        .image_id(image_id)
                        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                        .block_device_mappings(
                            aws_sdk_ec2::types::LaunchTemplateBlockDeviceMappingRequest::builder()
                                .device_name("/dev/sdf")
                                .ebs(
                                    aws_sdk_ec2::types::LaunchTemplateEbsBlockDeviceRequest::builder()
                                        .snapshot_id(snapshot_id)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .expect("CreateLaunchTemplate")
                .launch_template()
                .and_then(|t| t.launch_template_id())
                .expect("a template ID")
                .to_owned()
        })
    }

    /// A launch configuration whose block device mapping creates a volume from the snapshot.
    pub fn create_launch_configuration_with_snapshot(&self, name: &str, image_id: &str, snapshot_id: &str) {
        let client = self.autoscaling();
        let (name, image_id, snapshot_id) = (name.to_owned(), image_id.to_owned(), snapshot_id.to_owned());
        block_on(async move {
            client
                .create_launch_configuration()
                .launch_configuration_name(name)
                .image_id(image_id)
                .instance_type("t3.micro")
                .block_device_mappings(
                    aws_sdk_autoscaling::types::BlockDeviceMapping::builder()
                        .device_name("/dev/sdf")
                        .ebs(
                            aws_sdk_autoscaling::types::Ebs::builder()
                                .snapshot_id(snapshot_id)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .expect("CreateLaunchConfiguration");
        });
    }

    /// A new version of a template naming another image, made its default: the version
    /// before it is then neither `$Latest` nor `$Default`.
    pub fn new_default_template_version(&self, template_id: &str, image_id: &str) {
        let client = self.client();
        let (template_id, image_id) = (template_id.to_owned(), image_id.to_owned());
        block_on(async move {
            let version = client
                .create_launch_template_version()
                .launch_template_id(&template_id)
                .launch_template_data(
                    aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                        .image_id(image_id)
                        .build(),
                )
                .send()
                .await
                .expect("CreateLaunchTemplateVersion")
                .launch_template_version()
                .and_then(aws_sdk_ec2::types::LaunchTemplateVersion::version_number)
                .expect("a version number");
            client
                .modify_launch_template()
                .launch_template_id(template_id)
                .default_version(version.to_string())
                .send()
                .await
                .expect("ModifyLaunchTemplate");
        });
    }

    /// An Auto Scaling client for this server and region.
    pub fn autoscaling(&self) -> aws_sdk_autoscaling::Client {
        let config = aws_sdk_autoscaling::Config::builder()
            .behavior_version(aws_sdk_autoscaling::config::BehaviorVersion::latest())
            .region(aws_sdk_autoscaling::config::Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(test_credentials())
            .build();
        aws_sdk_autoscaling::Client::from_conf(config)
    }

    /// An SSM client for this server and region.
    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(test_credentials())
            .build();
        aws_sdk_ssm::Client::from_conf(config)
    }

    /// One of the region's default subnets, for Auto Scaling groups.
    pub fn subnet(&self) -> String {
        let client = self.client();
        block_on(async move {
            let output = client.describe_subnets().send().await.expect("DescribeSubnets");
            output.subnets()[0].subnet_id().expect("a subnet ID").to_owned()
        })
    }

    /// An Auto Scaling launch configuration naming the image.
    pub fn create_launch_configuration(&self, name: &str, image_id: &str) {
        let client = self.autoscaling();
        let (name, image_id) = (name.to_owned(), image_id.to_owned());
        block_on(async move {
            client
                .create_launch_configuration()
                .launch_configuration_name(name)
                .image_id(image_id)
                .instance_type("t3.micro")
                .send()
                .await
                .expect("CreateLaunchConfiguration");
        });
    }

    /// An SSM parameter of data type `aws:ec2:image` holding the image ID, once it reads back
    /// (the test server, as SSM, shows it only after checking the image).
    pub fn put_image_parameter(&self, name: &str, image_id: &str) {
        let client = self.ssm();
        let (name, image_id) = (name.to_owned(), image_id.to_owned());
        block_on(async move {
            client
                .put_parameter()
                .name(&name)
                .value(&image_id)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .data_type("aws:ec2:image")
                .overwrite(true)
                .send()
                .await
                .expect("PutParameter");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let read = client.get_parameter().name(&name).send().await;
                if read
                    .ok()
                    .and_then(|r| r.parameter()?.value().map(str::to_owned))
                    .as_deref()
                    == Some(&image_id)
                {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "SSM never took {image_id} into {name}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
    }

    /// The parameter's value and version, as GetParameter reads `NAME` (or `NAME:LABEL`).
    pub fn parameter(&self, name: &str) -> Option<(String, i64)> {
        let client = self.ssm();
        let name = name.to_owned();
        block_on(async move {
            let output = client.get_parameter().name(name).send().await.ok()?;
            let parameter = output.parameter()?;
            Some((parameter.value()?.to_owned(), parameter.version()))
        })
    }

    /// Disables an image (DisableImage): it stays, but can't be launched or listed by default.
    pub fn disable_image(&self, image_id: &str) {
        let client = self.client();
        let image_id = image_id.to_owned();
        block_on(async move {
            client
                .disable_image()
                .image_id(image_id)
                .send()
                .await
                .expect("DisableImage");
        });
    }

    /// Shares an image with an account (launch permission).
    pub fn share_image(&self, image_id: &str, account: &str) {
        let client = self.client();
        let (image_id, account) = (image_id.to_owned(), account.to_owned());
        block_on(async move {
            client
                .modify_image_attribute()
                .image_id(image_id)
                .launch_permission(
                    aws_sdk_ec2::types::LaunchPermissionModifications::builder()
                        .add(aws_sdk_ec2::types::LaunchPermission::builder().user_id(account).build())
                        .build(),
                )
                .send()
                .await
                .expect("ModifyImageAttribute");
        });
    }

    /// The region's non-terminated instances launched from the image.
    pub fn instances_of(&self, image_id: &str) -> Vec<String> {
        let client = self.client();
        let image_id = image_id.to_owned();
        block_on(async move {
            let output = client
                .describe_instances()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("image-id")
                        .values(image_id)
                        .build(),
                )
                .send()
                .await
                .expect("DescribeInstances");
            output
                .reservations()
                .iter()
                .flat_map(aws_sdk_ec2::types::Reservation::instances)
                .filter(|i| {
                    i.state().and_then(|s| s.name()) != Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
                })
                .filter_map(|i| i.instance_id())
                .map(str::to_owned)
                .collect()
        })
    }

    /// A Region-level Recycle Bin retention rule in this test's region (moto's default
    /// account) for `resource` (`image` or `snapshot`): what is deleted from now on waits in
    /// the bin for `days`. The test server's stand-in for the rbin service's CreateRule.
    pub fn retention_rule(&self, resource: &str, days: u32) {
        self.control(&format!(
            "retention-rule?account=123456789012&region={}&resource={resource}&days={days}",
            self.region
        ));
    }

    /// Makes an image of the default account `days` old (the test server's stand-in for time).
    pub fn age_image(&self, image_id: &str, days: u32) {
        self.control(&format!(
            "image-age?account=123456789012&region={}&image={image_id}&days={days}",
            self.region
        ));
    }

    /// `POST /amictl-test/{what}` to the test server, which must answer 200.
    fn control(&self, what: &str) {
        use std::io::Write;
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("the test server");
        let request = format!(
            "POST /amictl-test/{what} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("a control request sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("an answer");
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "{answer}"
        );
    }

    /// The image IDs in the region's Recycle Bin.
    pub fn binned_images(&self) -> Vec<String> {
        let client = self.client();
        block_on(async move {
            let listed = client
                .list_images_in_recycle_bin()
                .send()
                .await
                .expect("ListImagesInRecycleBin");
            listed
                .images()
                .iter()
                .filter_map(|i| i.image_id().map(str::to_owned))
                .collect()
        })
    }

    /// The snapshot IDs in the region's Recycle Bin.
    pub fn binned_snapshots(&self) -> Vec<String> {
        let client = self.client();
        block_on(async move {
            let listed = client
                .list_snapshots_in_recycle_bin()
                .send()
                .await
                .expect("ListSnapshotsInRecycleBin");
            listed
                .snapshots()
                .iter()
                .filter_map(|s| s.snapshot_id().map(str::to_owned))
                .collect()
        })
    }

    /// Tags a resource (an image, an instance) behind amictl's back: the console, another tool.
    pub fn tag(&self, resource: &str, key: &str, value: &str) {
        let client = self.client();
        let (resource, key, value) = (resource.to_owned(), key.to_owned(), value.to_owned());
        block_on(async move {
            client
                .create_tags()
                .resources(resource)
                .tags(Tag::builder().key(key).value(value).build())
                .send()
                .await
                .expect("CreateTags");
        });
    }

    /// Enables an image behind amictl's back (the console's Enable).
    pub fn enable_image(&self, image_id: &str) {
        let client = self.client();
        let image_id = image_id.to_owned();
        block_on(async move {
            client
                .enable_image()
                .image_id(image_id)
                .send()
                .await
                .expect("EnableImage");
        });
    }

    /// Deletes a snapshot behind amictl's back.
    pub fn delete_snapshot(&self, snapshot_id: &str) {
        let client = self.client();
        let snapshot_id = snapshot_id.to_owned();
        block_on(async move {
            client
                .delete_snapshot()
                .snapshot_id(snapshot_id)
                .send()
                .await
                .expect("DeleteSnapshot");
        });
    }

    /// Deregisters an image behind amictl's back, leaving its snapshots.
    pub fn deregister(&self, image_id: &str) {
        let client = self.client();
        let image_id = image_id.to_owned();
        block_on(async move {
            client
                .deregister_image()
                .image_id(image_id)
                .send()
                .await
                .expect("DeregisterImage");
        });
    }

    /// A snapshot of a new volume, made by hand, not for any image.
    pub fn hand_made_snapshot(&self) -> String {
        let client = self.client();
        let zone = format!("{}a", self.region);
        block_on(async move {
            let volume = client
                .create_volume()
                .size(1)
                .availability_zone(zone)
                .send()
                .await
                .expect("CreateVolume");
            let snapshot = client
                .create_snapshot()
                .volume_id(volume.volume_id().unwrap())
                .description("nightly backup")
                .send()
                .await
                .expect("CreateSnapshot");
            snapshot.snapshot_id().unwrap().to_owned()
        })
    }

    /// The IDs of the account's snapshots in this region.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let client = self.client();
        block_on(async move {
            let output = client
                .describe_snapshots()
                .owner_ids("self")
                .send()
                .await
                .expect("DescribeSnapshots");
            let mut ids: Vec<String> = output
                .snapshots()
                .iter()
                .filter_map(|s| s.snapshot_id())
                .map(str::to_owned)
                .collect();
            ids.sort();
            ids
        })
    }

    /// The IDs of the account's images in this region.
    pub fn image_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .own_images()
            .iter()
            .filter_map(|i| i.image_id())
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    }

    /// The snapshot of an image (moto gives each exactly one).
    pub fn snapshot_of(&self, image_id: &str) -> String {
        let images = self.own_images();
        let image = images
            .iter()
            .find(|i| i.image_id() == Some(image_id))
            .expect("the image exists");
        image.block_device_mappings()[0]
            .ebs()
            .unwrap()
            .snapshot_id()
            .unwrap()
            .to_owned()
    }

    /// The accounts a snapshot's create-volume permission names.
    pub fn snapshot_volume_accounts(&self, snapshot_id: &str) -> Vec<String> {
        let client = self.client();
        let snapshot_id = snapshot_id.to_owned();
        block_on(async move {
            let output = client
                .describe_snapshot_attribute()
                .snapshot_id(snapshot_id)
                .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
                .send()
                .await
                .expect("DescribeSnapshotAttribute");
            output
                .create_volume_permissions()
                .iter()
                .filter_map(|p| p.user_id())
                .map(str::to_owned)
                .collect()
        })
    }

    /// Grants create-volume permission on a snapshot to everyone (`public`) and to accounts.
    pub fn share_snapshot(&self, snapshot_id: &str, public: bool, accounts: &[&str]) {
        let client = self.client();
        let snapshot_id = snapshot_id.to_owned();
        let accounts: Vec<String> = accounts.iter().map(|a| (*a).to_owned()).collect();
        block_on(async move {
            client
                .modify_snapshot_attribute()
                .snapshot_id(snapshot_id)
                .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
                .operation_type(aws_sdk_ec2::types::OperationType::Add)
                .set_group_names(public.then(|| vec!["all".to_owned()]))
                .set_user_ids(Some(accounts))
                .send()
                .await
                .expect("ModifySnapshotAttribute");
        });
    }

    /// Whether a snapshot is public, and the accounts it is shared with.
    pub fn snapshot_sharing(&self, snapshot_id: &str) -> (bool, Vec<String>) {
        let client = self.client();
        let snapshot_id = snapshot_id.to_owned();
        block_on(async move {
            let output = client
                .describe_snapshot_attribute()
                .snapshot_id(snapshot_id)
                .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
                .send()
                .await
                .expect("DescribeSnapshotAttribute");
            let grants = output.create_volume_permissions();
            (
                grants
                    .iter()
                    .any(|p| p.group() == Some(&aws_sdk_ec2::types::PermissionGroup::All)),
                grants.iter().filter_map(|p| p.user_id()).map(str::to_owned).collect(),
            )
        })
    }

    /// Terminates an instance.
    pub fn terminate(&self, instance_id: &str) {
        let client = self.client();
        let instance_id = instance_id.to_owned();
        block_on(async move {
            client
                .terminate_instances()
                .instance_ids(instance_id)
                .send()
                .await
                .expect("TerminateInstances");
        });
    }

    /// The account's own images in this region, as the SDK sees them.
    pub fn own_images(&self) -> Vec<aws_sdk_ec2::types::Image> {
        let client = self.client();
        block_on(async move {
            let output = client
                .describe_images()
                .owners("self")
                .send()
                .await
                .expect("DescribeImages");
            output.images().to_vec()
        })
    }

    /// A snapshot's tags, as a map.
    pub fn snapshot_tags(&self, snapshot_id: &str) -> BTreeMap<String, String> {
        let client = self.client();
        let snapshot_id = snapshot_id.to_owned();
        block_on(async move {
            let output = client
                .describe_snapshots()
                .snapshot_ids(snapshot_id)
                .send()
                .await
                .expect("DescribeSnapshots");
            tag_map(output.snapshots()[0].tags())
        })
    }

    /// Makes an image public (launch permission for group `all`).
    pub fn make_public(&self, image_id: &str) {
        let client = self.client();
        let image_id = image_id.to_owned();
        block_on(async move {
            client
                .modify_image_attribute()
                .image_id(image_id)
                .launch_permission(
                    aws_sdk_ec2::types::LaunchPermissionModifications::builder()
                        .add(
                            aws_sdk_ec2::types::LaunchPermission::builder()
                                .group(aws_sdk_ec2::types::PermissionGroup::All)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .expect("ModifyImageAttribute");
        });
    }
}

/// The entry of a plan (or report) for one image.
pub fn plan_entry<'a>(plan: &'a serde_json::Value, image_id: &str) -> &'a serde_json::Value {
    plan["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["image_id"] == image_id)
        .unwrap_or_else(|| panic!("{image_id} is in the plan: {plan}"))
}

/// SDK tags as a map.
pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The dummy credentials every fixture client signs with.
fn test_credentials() -> Credentials {
    Credentials::new("AKIDAMICTLTEST", "amictl-test-secret", None, None, "test")
}

fn tags(resource: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (key, value) in pairs {
        spec = spec.tags(Tag::builder().key(*key).value(*value).build());
    }
    spec.build()
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// The amictl binary with a clean environment: no real credentials or config files, no
/// instance metadata service, no colour, a fixed width.
pub struct Amictl {
    command: Command,
}

/// What a run left: exit code, stdout, stderr and how long it took.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// stdout parsed as the one JSON document it must be.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Amictl {
    pub fn new() -> Amictl {
        let home = std::env::temp_dir().join("amictl-test-home");
        let mut command = Command::new(env!("CARGO_BIN_EXE_amictl"));
        command
            .env_clear()
            .env("HOME", &home)
            .env("AWS_CONFIG_FILE", home.join("no-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .env("COLUMNS", "200");
        Amictl { command }
    }

    pub fn env(mut self, key: &str, value: &str) -> Amictl {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Amictl {
        self.command.env_remove(key);
        self
    }

    pub fn arg(mut self, arg: &str) -> Amictl {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Amictl
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn run(mut self) -> Run {
        let started = Instant::now();
        let output = self
            .command
            .stdin(Stdio::null())
            .output()
            .expect("run the amictl binary");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// Starts amictl and returns at once, for tests that interrupt it.
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the amictl binary");
        let stderr = std::sync::Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let seen = std::sync::Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Running {
            child,
            started: Instant::now(),
            stderr,
            reader: Some(reader),
        }
    }

    /// Runs with stdout's reader gone before anything is written, as in `amictl … | head -0`.
    pub fn run_with_closed_stdout(mut self) -> Run {
        let started = Instant::now();
        let mut child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the amictl binary");
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("piped")
            .read_to_string(&mut stderr)
            .expect("read stderr");
        let status = child.wait().expect("wait for amictl");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr,
            elapsed: started.elapsed(),
        }
    }
}

/// amictl running in the background.
pub struct Running {
    child: std::process::Child,
    started: Instant,
    stderr: std::sync::Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed");
    }

    /// Waits (up to 30 s) until amictl has said `text` on stderr: a cue, not a guess.
    pub fn wait_for_stderr(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self
                .stderr
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(text)
            {
                return;
            }
            assert!(Instant::now() < deadline, "amictl never said {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes stdout's reading end, as `amictl … | head -0` does.
    pub fn close_stdout(&mut self) {
        drop(self.child.stdout.take());
    }

    /// Waits for it to end.
    pub fn wait(mut self) -> Run {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).expect("read stdout");
        }
        let status = self.child.wait().expect("wait for amictl");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stderr reader");
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            elapsed: self.started.elapsed(),
        }
    }
}

/// A port that accepts connections and never answers, to prove that nothing was sent.
pub struct Tripwire {
    listener: TcpListener,
}

impl Tripwire {
    pub fn new() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a tripwire");
        listener.set_nonblocking(true).expect("nonblocking");
        Tripwire { listener }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().expect("address"))
    }

    /// How many connections were made to it so far.
    pub fn connections(&self) -> usize {
        let mut count = 0;
        loop {
            match self.listener.accept() {
                Ok(_) => count += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return count,
                Err(e) => panic!("tripwire accept: {e}"),
            }
        }
    }
}

/// Runs `command` followed by each case's arguments against a port that never answers, and
/// checks that each is refused as a usage error: exit 2, one line on stderr that contains the
/// case's text, and not one connection made.
pub fn assert_refused_before_any_request(command: &[&str], cases: &[(&[&str], &str)]) {
    let tripwire = Tripwire::new();
    for (args, expected) in cases {
        let run = TestEnv::amictl_at(&tripwire.url()).args(command).args(*args).run();
        run.assert_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: one line: {}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{args:?} should say {expected:?}: {}",
            run.stderr
        );
    }
    assert_eq!(tripwire.connections(), 0, "nothing was sent");
}

/// A directory of the test's own under the system's temporary one, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("amictl-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        Scratch(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A URL on which nothing listens: connections are refused.
pub fn refused_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}
