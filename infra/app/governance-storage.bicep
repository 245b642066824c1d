// The app's own governance storage (one identity-based connection prefix in the app: GOVSTORAGE):
// - table `imagetattoos`: provenance of each image version (tattoo state), change requests (Kind=change)
//   and the audit outbox rows riding with both;
// - table `callbacknonces`: one-time nonces of signed change-system callbacks (replay protection);
// - container `rejected-events`: events the app refused, kept for inspection;
// - container `validation-reports`: full validation reports, write-once and content-addressed;
// - container `eventgrid-deadletter`: events Event Grid could not deliver (written by the system topic);
// - container `audit`: the audit log, version-level WORM with a time-based retention default policy.
param name string
param location string
param tags object = {}
param skuName string = 'Standard_LRS'
param tattooTableName string
param callbackNonceTableName string
param rejectedEventsContainerName string
param validationReportsContainerName string
param deadLetterContainerName string
param auditContainerName string

@minValue(1)
@maxValue(146000)
@description('Days each audit blob version stays immutable.')
param auditRetentionDays int

@description('True once an operator has locked the audit retention policy: a locked policy can only be extended (az storage container immutability-policy extend), so the template stops declaring it.')
param auditPolicyLocked bool = false

@description('Put a CanNotDelete lock on the account, so deleting the audit store takes a deliberate step.')
param deleteLock bool = true

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2' // version-level immutability needs general-purpose v2 without hierarchical namespace
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity only: no account keys, no SAS signed with them
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    isHnsEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices' // Event Grid dead-lettering is a trusted service
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // Version-level WORM requires blob versioning on the account.
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: 30
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 30
    }
  }
}

resource rejectedEventsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: rejectedEventsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource validationReportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: validationReportsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Audit log: version-level immutability is enabled on this container only (not account-wide), so the
// other containers stay ordinary. It can only be switched on when the container is created.
resource auditContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: auditContainerName
  properties: {
    publicAccess: 'None'
    immutableStorageWithVersioning: {
      enabled: true
    }
  }
}

// Default time-based retention for every blob version written to `audit`. Deployed Unlocked: locking
// is deliberate, irreversible and done by an operator after review (docs/operations.md).
//
// How the app's writes fare under it (docs/operations.md, "Audit container immutability"):
// - digests (v1/digests/...) and public keys (v1/keys/...) are block blobs created once
//   (If-None-Match: *): creating a blob is always allowed; the new version inherits this policy.
// - segments (v1/records/...) are append blobs: created once, then Append Block with an appendpos
//   condition. Append Block does not create a new blob version, it extends the current one, which is
//   protected; allowProtectedAppendWrites is what permits adding blocks to it (existing blocks can
//   never change). Microsoft documents the setting for default policies of version-level containers
//   (az storage container immutability-policy create --allow-protected-append-writes) and for
//   account-level version-level defaults; one conceptual page restricts "this property" to
//   container-scope policies, which matches only allowProtectedAppendWritesAll. So: set
//   allowProtectedAppendWrites, never allowProtectedAppendWritesAll (block-blob appends through the
//   Data Lake API, which the app does not use; the two are mutually exclusive anyway).
// - the setting can be changed only while the policy is unlocked: verify appends work in Azure before
//   locking.
resource auditRetention 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (!auditPolicyLocked) {
  parent: auditContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditRetentionDays
    allowProtectedAppendWrites: true
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tattooTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: tattooTableName
}

resource callbackNonceTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: callbackNonceTableName
}

// The audit store must not disappear with a routine `azd down` or resource group deletion.
resource accountLock 'Microsoft.Authorization/locks@2020-05-01' = if (deleteLock) {
  name: 'do-not-delete-audit-store'
  scope: account
  properties: {
    level: 'CanNotDelete'
    notes: 'Golden image governance: holds the audit log and tattoo state. Remove deliberately (docs/operations.md).'
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
