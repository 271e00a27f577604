# The gateway's own static pool (DHCP is refused behind a balancer); set only when differing.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][ValidateSet('StaticPool')][string]$Method,
    [Parameter(Mandatory)][ipaddress]$Start,
    [Parameter(Mandatory)][ipaddress]$End
)
$ErrorActionPreference = 'Stop'
$current = Get-VpnIPAddressAssignment
$ranges = @($current.IPAddressRange | ForEach-Object { "$($_.StartIPAddress)-$($_.EndIPAddress)" })
$changes = @()
if ("$($current.IPAssignmentMethod)" -ne $Method -or $ranges -notcontains "$Start-$End") {
    $changes += "IPv4 assignment: $($current.IPAssignmentMethod) $($ranges -join ',') -> $Method $Start-$End"
    if ($PSCmdlet.ShouldProcess('VPN server', "Set-VpnIPAddressAssignment -IPAssignmentMethod $Method")) {
        Set-VpnIPAddressAssignment -IPAssignmentMethod $Method -IPAddressRange "$Start", "$End"
    }
}
$Ansible.Changed = $changes.Count -gt 0
$Ansible.Result = @{ step = 'address-pool'; changes = $changes }
