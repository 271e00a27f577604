# Install-RemoteAccess -VpnType Vpn, once: an installed VPN server is left as it is.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string]$VpnType
)
$ErrorActionPreference = 'Stop'
$state = Get-RemoteAccess
$changes = @()
if ($state.VpnStatus -ne 'Installed') {
    $changes += "VpnStatus: $($state.VpnStatus) -> Installed (Install-RemoteAccess -VpnType $VpnType)"
    if ($PSCmdlet.ShouldProcess('RemoteAccess', "Install-RemoteAccess -VpnType $VpnType")) {
        Install-RemoteAccess -VpnType $VpnType
    }
}
$Ansible.Changed = $changes.Count -gt 0
$Ansible.Result = @{ step = 'install-remoteaccess'; changes = $changes }
