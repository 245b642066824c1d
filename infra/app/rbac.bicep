// Every role assignment of the deployment, in one file, so a reviewer sees each grant and its reason
// in one place. Least privilege throughout: data-plane roles scoped to the smallest resource that
// works, plus one custom ARM role of read/run actions in the image factory group and Virtual Machine
// Contributor in the boot test's throw-away group only. No Owner/Contributor and no key-listing role
// on anything that holds governance data; the one data "Owner" role is confined to the Functions host
// account.
//
// Bicep assigns roles only inside the resource group a file is deployed into, so main.bicep deploys
// this file three times: `target: 'app'` into the app's group, `target: 'imageFactory'` into the image
// factory's group and `target: 'bootTest'` into the boot test's throw-away group. Each assignment is
// guarded by the target it belongs to.
targetScope = 'resourceGroup'

@allowed(['app', 'imageFactory', 'bootTest'])
param target string
param environmentName string

@description('Principal id of the app\'s user-assigned identity.')
param appPrincipalId string

// Names in the app's resource group (every target receives them so each one is a valid string).
param governanceStorageAccountName string
param hostStorageAccountName string
param applicationInsightsName string
param rejectedEventsContainerName string
param deadLetterContainerName string
param auditContainerName string
param keyVaultName string
param auditSigningKeyName string
param eventsTopicName string

@description('Principal id of the image factory system topic\'s identity (dead-lettering).')
param systemTopicPrincipalId string

@description('Optional Entra object id (ideally a group) allowed to read rejected and dead-lettered events.')
param operatorsPrincipalId string = ''

@description('Optional Entra object id (ideally a group) allowed to read the audit container and the signing key\'s public part, to verify the audit trail.')
param auditReadersPrincipalId string = ''

@description('Name of the Key Vault secret holding the ServiceNow callback HMAC secret; empty when signed callbacks are not configured.')
param callbackSecretName string = ''

var isApp = target == 'app'
var isImageFactory = target == 'imageFactory'
var isBootTest = target == 'bootTest'

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
  keyVaultReader: '21090545-7ca7-4776-b22c-e363652d74d2'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
  virtualMachineContributor: '9980e02c-c2be-4d73-94e8-173b1dc7cf3c'
}

// ============================================================================================
// IMAGE FACTORY CUSTOM ROLE: the only ARM permissions the app holds, on the image factory group.
// Read the templates (and their lastRunStatus), start a run, read run outputs, read galleries,
// image definitions and versions. Nothing else: no write, no delete, no role management.
// PUBLISHING (later) will add 'Microsoft.Compute/galleries/images/versions/write' here; tattoo tags
// on versions need the same write. Keep every addition in this list, with its reason.
// ============================================================================================
var imageFactoryRoleActions = [
  'Microsoft.VirtualMachineImages/imageTemplates/read'
  'Microsoft.VirtualMachineImages/imageTemplates/run/action'
  'Microsoft.VirtualMachineImages/imageTemplates/runOutputs/read'
  'Microsoft.Compute/galleries/read'
  'Microsoft.Compute/galleries/images/read'
  'Microsoft.Compute/galleries/images/versions/read'
]

resource governanceStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: governanceStorageAccountName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource rejectedEvents 'containers' existing = {
      name: rejectedEventsContainerName
    }

    resource deadLetter 'containers' existing = {
      name: deadLetterContainerName
    }

    resource audit 'containers' existing = {
      name: auditContainerName
    }
  }
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName

  resource auditSigningKey 'keys' existing = {
    name: auditSigningKeyName
  }

  // Created by an operator, not by this template (docs/operations.md, "Change-system callbacks").
  resource callbackSecret 'secrets' existing = {
    name: empty(callbackSecretName) ? 'unused' : callbackSecretName
  }
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource eventsTopic 'Microsoft.EventGrid/topics@2025-02-15' existing = {
  name: eventsTopicName
}

// --- target: app -----------------------------------------------------------------------------

// App -> governance account: Storage Blob Data Contributor. The app creates, reads and appends blobs
// (rejected events, audit records). Not Storage Blob Data Owner: the app never manages POSIX ACLs or
// ownership, and Owner's extra rights are exactly what an audit log's writer must not have. Not the
// account-level Owner/Contributor roles either: those are control-plane roles that could list keys or
// change the immutability policy. Data roles cannot delete or shorten WORM-protected audit versions.
// Scoped to the account because the app writes to several containers and the account holds nothing
// but governance data.
// The same role covers the app's start-up and /api/health check of the audit container: Get Container
// Properties (x-ms-immutable-storage-with-versioning-enabled, x-ms-has-immutability-policy) is
// authorized by Microsoft.Storage/storageAccounts/blobServices/containers/read, which is in this role's
// `actions`; a blob version's retention (Get Blob Properties: x-ms-immutability-policy-until-date and
// -mode) by blobs/read in its `dataActions`. Nothing more is granted for it.
resource appGovernanceBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp) {
  name: guid(governanceStorage.id, appPrincipalId, roles.storageBlobDataContributor)
  scope: governanceStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// App -> governance account: Storage Table Data Contributor, for tattoo state (read, insert,
// conditional update with ETags). Not Owner/Contributor on the account for the reasons above. Scoped
// to the account, which holds only governance data, because the design adds tables (approvals, fleet
// tattoos); a per-table scope would be possible but would break each time a table is added.
resource appGovernanceTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp) {
  name: guid(governanceStorage.id, appPrincipalId, roles.storageTableDataContributor)
  scope: governanceStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// App -> host account: Storage Blob Data Owner. This is the role the Functions documentation names for
// an identity-based AzureWebJobsStorage (the host creates its containers and takes blob leases) and it
// also covers the Flex Consumption package container. It is confined to the host account, which
// holds no governance data. No queue/table roles: no trigger of this app uses the host's queues/tables.
resource appHostBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp) {
  name: guid(hostStorage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// App -> Application Insights: Monitoring Metrics Publisher, required to send telemetry when the
// component has local (instrumentation key) auth disabled.
resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp) {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// App -> the audit digest signing key only: Key Vault Crypto User. The app needs keys/read (fetch the
// public key, published as v1/keys/KEYID.pem, and the current version) and keys/sign/action (ES256
// signatures over digests). No built-in role is narrower: Key Vault Reader cannot sign, Crypto
// Service Encryption User can only wrap/unwrap. The role also carries encrypt/decrypt/wrap/unwrap/
// verify, which an EC key with keyOps [sign, verify] refuses anyway, plus keys/update and keys/backup:
// neither exposes the private key (a backup restores only into a Key Vault in the same geography and
// subscription); update could at worst disable the key, which stops signing loudly, never forges.
// Scoped to the KEY, not the vault: the grant cannot grow to any key or secret added to the vault
// later, and the app cannot list the vault. (Microsoft's general advice is a vault per application and
// environment with roles at vault scope, key scope only for special cases; this vault is exactly such
// a dedicated vault, so the key scope costs no extra management and is strictly narrower.)
// Control-plane roles (Key Vault Contributor/Owner) are never granted: the app cannot change the
// vault, its network rules, purge protection or role assignments.
resource appAuditSigning 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp) {
  name: guid(keyVault::auditSigningKey.id, appPrincipalId, roles.keyVaultCryptoUser)
  scope: keyVault::auditSigningKey
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCryptoUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// App -> the ServiceNow callback secret only (when configured): Key Vault Secrets User, so the platform
// can resolve the CALLBACK_SECRETS__SERVICENOW Key Vault reference with the app's identity
// (function-app.bicep sets keyVaultReferenceIdentity). Secrets User reads secret values and nothing
// else; scoped to the one SECRET, so it cannot extend to anything stored in the vault later, and the
// app still cannot list the vault. The secret must exist before this assignment is deployed (its scope).
resource appCallbackSecret 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp && !empty(callbackSecretName)) {
  name: guid(keyVault::callbackSecret.id, appPrincipalId, roles.keyVaultSecretsUser)
  scope: keyVault::callbackSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// App -> the outbound events topic only: EventGrid Data Sender, the data-plane role whose one action is
// Microsoft.EventGrid/events/send/action (publish). The topic has local auth disabled, so this
// grant is the only way to publish to it. Not EventGrid Contributor: the app never manages topics or
// subscriptions (subscribers create their own). Scoped to the topic, not the group.
resource appEventsSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp) {
  name: guid(eventsTopic.id, appPrincipalId, roles.eventGridDataSender)
  scope: eventsTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// System topic -> dead-letter container only: Storage Blob Data Contributor, which Event Grid needs to
// write dead-lettered events with its identity. Container scope: it cannot touch audit or tattoos.
resource topicDeadLetter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp) {
  name: guid(governanceStorage::blobService::deadLetter.id, systemTopicPrincipalId, roles.storageBlobDataContributor)
  scope: governanceStorage::blobService::deadLetter
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: systemTopicPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Operators (optional) -> rejected and dead-lettered events: Storage Blob Data Reader, read-only,
// per container. principalType is left to Entra so a user or a group both work.
resource operatorsRejected 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp && !empty(operatorsPrincipalId)) {
  name: guid(governanceStorage::blobService::rejectedEvents.id, operatorsPrincipalId, roles.storageBlobDataReader)
  scope: governanceStorage::blobService::rejectedEvents
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: operatorsPrincipalId
  }
}

resource operatorsDeadLetter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp && !empty(operatorsPrincipalId)) {
  name: guid(governanceStorage::blobService::deadLetter.id, operatorsPrincipalId, roles.storageBlobDataReader)
  scope: governanceStorage::blobService::deadLetter
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: operatorsPrincipalId
  }
}

// Audit readers (optional) -> the audit container: Storage Blob Data Reader, read-only, so auditors
// can download the archive and verify it (docs/operations.md, "Verify the audit trail"). Data roles
// cannot delete or alter WORM-protected versions in any case; Reader cannot even add blobs.
resource auditReadersContainer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp && !empty(auditReadersPrincipalId)) {
  name: guid(governanceStorage::blobService::audit.id, auditReadersPrincipalId, roles.storageBlobDataReader)
  scope: governanceStorage::blobService::audit
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    principalId: auditReadersPrincipalId
  }
}

// Audit readers (optional) -> the signing key: Key Vault Reader, so they can fetch the trusted public
// key from Key Vault (az keyvault key download) instead of trusting the copy inside the archive. It
// reads key properties and public material only; it cannot sign. Scoped to the key.
resource auditReadersKey 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isApp && !empty(auditReadersPrincipalId)) {
  name: guid(keyVault::auditSigningKey.id, auditReadersPrincipalId, roles.keyVaultReader)
  scope: keyVault::auditSigningKey
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultReader)
    principalId: auditReadersPrincipalId
  }
}

// --- target: imageFactory --------------------------------------------------------------------

// The custom role is defined here, next to its only assignment, and can be assigned only in this group.
var imageFactoryRoleId = guid(subscription().id, resourceGroup().id, 'golden-image-governance', environmentName)

resource imageFactoryRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (isImageFactory) {
  name: imageFactoryRoleId
  properties: {
    roleName: 'Golden image governance (${environmentName}, ${resourceGroup().name})'
    description: 'Lets the golden image governance app read Image Builder templates and Compute Gallery images, and start template runs, in this resource group only.'
    type: 'CustomRole'
    permissions: [
      {
        actions: imageFactoryRoleActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource appImageFactory 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isImageFactory) {
  name: guid(resourceGroup().id, appPrincipalId, imageFactoryRoleId)
  properties: {
    // A role definition's id is subscription-level even when it is deployed from a resource group.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', imageFactoryRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Golden image governance app (${environmentName}): read templates and galleries, start runs.'
  }
  dependsOn: [imageFactoryRole]
}

// --- target: bootTest ------------------------------------------------------------------------

// App -> the boot test's throw-away group only: Virtual Machine Contributor. The validation gate creates
// a VM there from a staging image version, runs one Run Command in it and deletes it (with its OS disk
// and NIC). The role covers exactly that: Microsoft.Compute/virtualMachines/* (create, runCommand,
// delete), disks read/write/delete, Microsoft.Network/networkInterfaces/* (the NIC Compute creates) and
// virtualNetworks/subnets/join/action with virtualNetworks/read (joining the NIC to the group's own
// subnet). It cannot create public IPs or change the network or its security rules (no
// virtualNetworks/write, no networkSecurityGroups/write), so Network Contributor is deliberately NOT
// granted: the NIC needs nothing more, and Network Contributor would let the app open the network.
// Reading the source image version in the staging gallery is already covered by the custom role in the
// image factory group (galleries/images/versions/read), so no extra Reader is granted on the gallery.
// Group scope: nothing else may live in this group (docs/operations.md, "Boot test resource group").
resource appBootTestVms 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isBootTest) {
  name: guid(resourceGroup().id, appPrincipalId, roles.virtualMachineContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.virtualMachineContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Golden image governance app (${environmentName}): throw-away boot test VMs in this group only.'
  }
}
