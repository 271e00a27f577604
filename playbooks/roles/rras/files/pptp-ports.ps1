# PPTP off: Set-VpnServerConfiguration has no PPTP port count, so the WAN Miniport (PPTP)
# adapter's WanEndpoints (the port count the RRAS console's Ports dialog sets) goes to 0.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][uint32]$WanEndpoints
)
$ErrorActionPreference = 'Stop'
$class = 'HKLM:\SYSTEM\CurrentControlSet\Control\Class\{4d36e972-e325-11ce-bfc1-08002be10318}'
$keys = @(Get-ChildItem -Path $class -ErrorAction SilentlyContinue |
    Where-Object { (Get-ItemProperty -Path $_.PSPath -Name DriverDesc -ErrorAction SilentlyContinue).DriverDesc -eq 'WAN Miniport (PPTP)' })
if ($keys.Count -eq 0) {
    throw 'no WAN Miniport (PPTP) adapter found (fix: run Install-RemoteAccess first; on a build without PPTP there is nothing to disable, skip this step)'
}
$changes = @()
foreach ($key in $keys) {
    $have = (Get-ItemProperty -Path $key.PSPath -Name WanEndpoints -ErrorAction SilentlyContinue).WanEndpoints
    if ("$have" -ne "$WanEndpoints") {
        $changes += "$($key.PSChildName) WanEndpoints: $have -> $WanEndpoints"
        if ($PSCmdlet.ShouldProcess($key.PSChildName, "WanEndpoints = $WanEndpoints")) {
            Set-ItemProperty -Path $key.PSPath -Name WanEndpoints -Value $WanEndpoints -Type DWord
        }
    }
}
$Ansible.Changed = $changes.Count -gt 0
$Ansible.Result = @{ step = 'pptp-ports'; changes = $changes }
