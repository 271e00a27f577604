# Set-VpnServerConfiguration -CustomPolicy with the catalogue's IKEv2 policy, the IKEv2
# idle time-out and the L2TP port count; set only when a value differs.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string]$AuthenticationTransformConstants,
    [Parameter(Mandatory)][string]$CipherTransformConstants,
    [Parameter(Mandatory)][string]$DHGroup,
    [Parameter(Mandatory)][string]$EncryptionMethod,
    [Parameter(Mandatory)][string]$IntegrityCheckMethod,
    [Parameter(Mandatory)][string]$PfsGroup,
    [Parameter(Mandatory)][uint32]$SALifeTimeSeconds,
    [Parameter(Mandatory)][uint32]$MMSALifeTimeSeconds,
    [Parameter(Mandatory)][uint32]$SADataSizeForRenegotiationKilobytes,
    [Parameter(Mandatory)][uint32]$IdleDisconnectSeconds,
    [Parameter(Mandatory)][uint32]$L2tpPorts
)
$ErrorActionPreference = 'Stop'
$current = Get-VpnServerConfiguration
$wanted = [ordered]@{}
foreach ($name in $PSBoundParameters.Keys) { $wanted[$name] = $PSBoundParameters[$name] }

function Get-Current([object]$Object, [string]$Name) {
    # The output object names some properties without their unit (SALifeTime, IdleDisconnect).
    foreach ($candidate in @($Name, ($Name -replace '(Seconds|Kilobytes)$', ''))) {
        if ($Object.PSObject.Properties.Name -contains $candidate) { return $Object.$candidate }
    }
    return $null
}

$changes = @()
if (-not $current.CustomPolicy) { $changes += 'CustomPolicy: False -> True' }
foreach ($name in $wanted.Keys) {
    $have = Get-Current $current $name
    if ("$have" -ne "$($wanted[$name])") { $changes += "${name}: $have -> $($wanted[$name])" }
}
if ($changes.Count -gt 0 -and $PSCmdlet.ShouldProcess('VPN server', 'Set-VpnServerConfiguration -CustomPolicy')) {
    Set-VpnServerConfiguration -CustomPolicy @wanted
}
$Ansible.Changed = $changes.Count -gt 0
$Ansible.Result = @{ step = 'vpn-server-configuration'; changes = $changes }
