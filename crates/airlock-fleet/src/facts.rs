//! What EC2 says now of the resources a request touches. Their tags decide authorization and
//! their state decides what to do, so every family looks them up here the same way before any
//! change: a resource the request names and EC2 does not know is an error before anything runs.

use crate::run::FleetError;
use airlock_cloud::{
    Address, CloudError, Ec2, Filter, Image, Instance, KeyPair, NetworkInterface, SecurityGroup,
    Snapshot, Tag, Volume,
};
use std::collections::HashMap;

/// The resources a request touches, as EC2 describes them now.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Instances.
    pub instances: Vec<Instance>,
    /// Elastic IPs.
    pub addresses: Vec<Address>,
    /// Network interfaces.
    pub interfaces: Vec<NetworkInterface>,
    /// Security groups.
    pub security_groups: Vec<SecurityGroup>,
    /// Key pairs.
    pub key_pairs: Vec<KeyPair>,
    /// Volumes.
    pub volumes: Vec<Volume>,
    /// Snapshots.
    pub snapshots: Vec<Snapshot>,
    /// Images.
    pub images: Vec<Image>,
    /// Tags of other resources (subnets, VPCs), from `DescribeTags`.
    pub other_tags: HashMap<String, Vec<Tag>>,
}

impl Facts {
    /// The instance with this id.
    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.instance_id == id)
    }
    /// The address with this allocation id.
    pub fn address(&self, id: &str) -> Option<&Address> {
        self.addresses
            .iter()
            .find(|a| a.allocation_id.as_deref() == Some(id))
    }
    /// The interface with this id.
    pub fn interface(&self, id: &str) -> Option<&NetworkInterface> {
        self.interfaces
            .iter()
            .find(|n| n.network_interface_id == id)
    }
    /// The security group with this id.
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.group_id == id)
    }
    /// The key pair with this name.
    pub fn key_pair(&self, name: &str) -> Option<&KeyPair> {
        self.key_pairs.iter().find(|k| k.key_name == name)
    }
    /// The volume with this id.
    pub fn volume(&self, id: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.volume_id == id)
    }
    /// The snapshot with this id.
    pub fn snapshot(&self, id: &str) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| s.snapshot_id == id)
    }
    /// The image with this id.
    pub fn image(&self, id: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.image_id == id)
    }
    /// The instance an interface is attached to.
    pub fn attached_instance(&self, interface_id: &str) -> Option<&str> {
        self.interface(interface_id)?
            .attachment
            .as_ref()?
            .instance_id
            .as_deref()
    }

    /// The current tags of a resource (by id, or by name for key pairs).
    pub fn tags_of(&self, id: &str) -> Vec<Tag> {
        let found = self
            .instance(id)
            .map(|x| &x.tags)
            .or_else(|| self.address(id).map(|x| &x.tags))
            .or_else(|| self.interface(id).map(|x| &x.tags))
            .or_else(|| self.security_group(id).map(|x| &x.tags))
            .or_else(|| self.key_pair(id).map(|x| &x.tags))
            .or_else(|| self.volume(id).map(|x| &x.tags))
            .or_else(|| self.snapshot(id).map(|x| &x.tags))
            .or_else(|| self.image(id).map(|x| &x.tags))
            .or_else(|| self.other_tags.get(id));
        found.cloned().unwrap_or_default()
    }
}

/// `Ok` when `found`, otherwise the not-found error `missing` describes.
fn require(found: bool, missing: impl FnOnce() -> String) -> Result<(), FleetError> {
    if found {
        Ok(())
    } else {
        Err(FleetError::NotFound(missing()))
    }
}

/// One resource looked up by id, alone or beside the instances it is used with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookup<'a> {
    Address(&'a str),
    Interface(&'a str),
    Volume(&'a str),
}

/// What a [`Lookup`] found, with the id it asked for.
enum Found<'a> {
    Addresses(&'a str, Result<Vec<Address>, CloudError>),
    Interfaces(&'a str, Result<Vec<NetworkInterface>, CloudError>),
    Volumes(&'a str, Result<Vec<Volume>, CloudError>),
}

impl<'a> Lookup<'a> {
    async fn fetch(self, ec2: &dyn Ec2) -> Found<'a> {
        match self {
            Lookup::Address(id) => Found::Addresses(
                id,
                ec2.describe_addresses(&[Filter::new("allocation-id", id)])
                    .await,
            ),
            Lookup::Interface(id) => Found::Interfaces(
                id,
                ec2.describe_network_interfaces(&[], &[id.to_owned()]).await,
            ),
            Lookup::Volume(id) => Found::Volumes(
                id,
                ec2.describe_volumes(&[Filter::new("volume-id", id)]).await,
            ),
        }
    }
}

/// The look-ups, each describing one kind of resource into the facts.
impl Facts {
    pub(crate) async fn load_instances(
        &mut self,
        ec2: &dyn Ec2,
        ids: &[&str],
    ) -> Result<(), FleetError> {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        let found = ec2.describe_instances(&[], &ids).await;
        self.take_instances(found, &ids)
    }

    pub(crate) async fn load_address(&mut self, ec2: &dyn Ec2, id: &str) -> Result<(), FleetError> {
        self.load(ec2, Lookup::Address(id)).await
    }

    pub(crate) async fn load_interface(
        &mut self,
        ec2: &dyn Ec2,
        id: &str,
    ) -> Result<(), FleetError> {
        self.load(ec2, Lookup::Interface(id)).await
    }

    pub(crate) async fn load_volume(&mut self, ec2: &dyn Ec2, id: &str) -> Result<(), FleetError> {
        self.load(ec2, Lookup::Volume(id)).await
    }

    async fn load(&mut self, ec2: &dyn Ec2, lookup: Lookup<'_>) -> Result<(), FleetError> {
        let found = lookup.fetch(ec2).await;
        self.take(found)
    }

    /// The resource and the instances, described at the same time: one round trip, not two.
    pub(crate) async fn load_with_instances(
        &mut self,
        ec2: &dyn Ec2,
        lookup: Lookup<'_>,
        instances: &[&str],
    ) -> Result<(), FleetError> {
        let ids: Vec<String> = instances.iter().map(|s| (*s).to_owned()).collect();
        let (found, listed) = tokio::join!(lookup.fetch(ec2), ec2.describe_instances(&[], &ids));
        self.take(found)?;
        self.take_instances(listed, &ids)
    }

    fn take_instances(
        &mut self,
        found: Result<Vec<Instance>, CloudError>,
        ids: &[String],
    ) -> Result<(), FleetError> {
        self.instances = found?;
        for id in ids {
            require(self.instance(id).is_some(), || format!("no instance {id}"))?;
        }
        Ok(())
    }

    /// Keeps what a look-up found, or says which resource does not exist.
    fn take(&mut self, found: Found<'_>) -> Result<(), FleetError> {
        match found {
            Found::Addresses(id, a) => {
                self.addresses = a?;
                require(self.address(id).is_some(), || format!("no Elastic IP {id}"))
            }
            Found::Interfaces(id, n) => {
                self.interfaces = n?;
                require(self.interface(id).is_some(), || {
                    format!("no network interface {id}")
                })
            }
            Found::Volumes(id, v) => {
                self.volumes = v?;
                require(self.volume(id).is_some(), || format!("no volume {id}"))
            }
        }
    }

    pub(crate) async fn load_snapshot(
        &mut self,
        ec2: &dyn Ec2,
        id: &str,
    ) -> Result<(), FleetError> {
        self.snapshots = ec2.describe_snapshots(&[], &[id.to_owned()]).await?;
        require(self.snapshot(id).is_some(), || format!("no snapshot {id}"))
    }

    pub(crate) async fn load_security_groups(
        &mut self,
        ec2: &dyn Ec2,
        ids: &[String],
    ) -> Result<(), FleetError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.security_groups = ec2.describe_security_groups(&[], ids).await?;
        for id in ids {
            require(self.security_group(id).is_some(), || {
                format!("no security group {id}")
            })?;
        }
        Ok(())
    }

    pub(crate) async fn load_key_pair(
        &mut self,
        ec2: &dyn Ec2,
        name: &str,
    ) -> Result<(), FleetError> {
        self.key_pairs = ec2.describe_key_pairs(&[], &[name.to_owned()]).await?;
        require(self.key_pair(name).is_some(), || {
            format!("no key pair {name:?}")
        })
    }

    pub(crate) async fn load_image(&mut self, ec2: &dyn Ec2, id: &str) -> Result<(), FleetError> {
        self.images = ec2.describe_images(&[], &[id.to_owned()]).await?;
        require(self.image(id).is_some(), || {
            format!("no image {id} owned by this account")
        })
    }

    /// Tags of resources no family owns (subnets, VPCs), for the checks on them.
    pub(crate) async fn load_other_tags(
        &mut self,
        ec2: &dyn Ec2,
        ids: &[String],
    ) -> Result<(), FleetError> {
        for (id, tag) in ec2.describe_tags(ids).await? {
            self.other_tags.entry(id).or_default().push(tag);
        }
        Ok(())
    }
}
