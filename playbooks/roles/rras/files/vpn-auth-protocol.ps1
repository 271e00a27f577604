# Set-VpnAuthProtocol: EAP for users, machine certificates chaining to the named root with
# the Client Authentication EKU for devices; set only when a value differs.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string[]]$UserAuthProtocolAccepted,
    [Parameter(Mandatory)][string]$TunnelAuthProtocolsAdvertised,
    [Parameter(Mandatory)][string[]]$CertificateEKUsToAccept,
    [Parameter(Mandatory)][string]$RootCertificateName
)
$ErrorActionPreference = 'Stop'
$root = @(Get-ChildItem -Path Cert:\LocalMachine\Root | Where-Object Subject -eq $RootCertificateName)
if ($root.Count -ne 1) {
    throw ("root certificate '{0}' found {1} times in LocalMachine\Root (fix: import exactly one root with that " +
        "subject, e.g. with ansible.windows.win_certificate_store)") -f $RootCertificateName, $root.Count
}
$current = Get-VpnAuthProtocol
$changes = @()
if ((@($current.UserAuthProtocolAccepted) -join ',') -ne ($UserAuthProtocolAccepted -join ',')) {
    $changes += "UserAuthProtocolAccepted: $($current.UserAuthProtocolAccepted -join ',') -> $($UserAuthProtocolAccepted -join ',')"
}
if ("$($current.TunnelAuthProtocolsAdvertised)" -ne $TunnelAuthProtocolsAdvertised) {
    $changes += "TunnelAuthProtocolsAdvertised: $($current.TunnelAuthProtocolsAdvertised) -> $TunnelAuthProtocolsAdvertised"
}
if ((@($current.CertificateEKUsToAccept) -join ',') -ne ($CertificateEKUsToAccept -join ',')) {
    $changes += "CertificateEKUsToAccept: $($current.CertificateEKUsToAccept -join ',') -> $($CertificateEKUsToAccept -join ',')"
}
$haveRoot = @($current.RootCertificateNameToAccept | ForEach-Object { $_.Thumbprint })
if (($haveRoot -join ',') -ne $root[0].Thumbprint) {
    $changes += "RootCertificateNameToAccept: $($haveRoot -join ',') -> $($root[0].Thumbprint) ($RootCertificateName)"
}
if ($changes.Count -gt 0 -and $PSCmdlet.ShouldProcess('VPN server', 'Set-VpnAuthProtocol')) {
    Set-VpnAuthProtocol -UserAuthProtocolAccepted $UserAuthProtocolAccepted `
        -TunnelAuthProtocolsAdvertised $TunnelAuthProtocolsAdvertised `
        -CertificateEKUsToAccept $CertificateEKUsToAccept -RootCertificateNameToAccept $root[0]
}
$Ansible.Changed = $changes.Count -gt 0
$Ansible.Result = @{ step = 'vpn-auth-protocol'; changes = $changes }
