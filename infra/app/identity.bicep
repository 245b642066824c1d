// The app's one user-assigned identity: the function host, the app code (storage and ARM calls) and
// the Flex Consumption package download all authenticate as it. Its grants are in rbac.bicep.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
