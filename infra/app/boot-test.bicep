// The boot test's throw-away network (docs/architecture.md, "Boot test"; docs/operations.md,
// "Boot test resource group").
//
// Deployed into a resource group of its own (`rg-<environment>-boottest`, created by main.bicep)
// that holds nothing but this network and, for a few minutes at a time, the VMs the validation gate
// boots from staging image versions (tagged goldenImageBootTest=throwaway, deleted after each test).
// The app's identity holds Virtual Machine Contributor on that group only (rbac.bicep, target
// 'bootTest'): it can create VMs and their NICs and join them to this subnet, but it cannot change
// this network, its security rules, or anything outside the group.
//
// No public IP, no peering, no gateway: a VM booted from an untested image can reach nothing of the
// organization's, and nothing can reach it. Run Command talks to the VM through the Azure VM agent.
param location string
param tags object = {}
param vnetName string

@description('Address space of the isolated boot test network; the one subnet takes all of it. Nothing peers with it, so it may overlap other networks.')
param addressPrefix string

param subnetName string = 'boot-test'

// Inbound is denied from everywhere, the virtual network included (the default rules would allow
// VNet-internal traffic between two throw-away VMs). Azure's platform addresses (168.63.129.16,
// 169.254.169.254), which the VM agent and Run Command use, are not subject to security rules.
resource nsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: 'nsg-${vnetName}'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        name: 'deny-all-inbound'
        properties: {
          description: 'Throw-away VMs accept no connections.'
          priority: 4096
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: subnetName
        properties: {
          addressPrefix: addressPrefix
          networkSecurityGroup: {
            id: nsg.id
          }
        }
      }
    ]
  }
}

output vnetId string = vnet.id
// BOOT_TEST_SUBNET_ID: where Compute creates each throw-away VM's NIC.
output subnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, subnetName)
