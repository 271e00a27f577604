# RRAS authenticates and accounts through RADIUS (NPS). The shared secret arrives as a
# SecureString and is never written to the output; a secret cannot be read back, so an
# existing server keeps its secret (rotate with Set-RemoteAccessRadius by hand or remove it first).
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string]$AuthType,
    [Parameter(Mandatory)][string]$ServerName,
    [Parameter(Mandatory)][ValidateSet('Authentication', 'Accounting')][string]$Purpose,
    [Parameter(Mandatory)][uint16]$Port,
    [Parameter(Mandatory)][uint32]$Timeout,
    [Parameter(Mandatory)][byte]$Score,
    [Parameter(Mandatory)][securestring]$SharedSecret
)
$ErrorActionPreference = 'Stop'
$plain = [System.Net.NetworkCredential]::new('', $SharedSecret).Password
$changes = @()
if ($Purpose -eq 'Authentication') {
    $auth = Get-VpnAuthType
    if ("$($auth.Type)" -ne $AuthType) {
        $changes += "VpnAuthType: $($auth.Type) -> $AuthType"
        if ($PSCmdlet.ShouldProcess('VPN server', "Set-VpnAuthType -Type $AuthType")) {
            Set-VpnAuthType -Type $AuthType -RadiusServer $ServerName -SharedSecret $plain -RadiusPort $Port `
                -RadiusTimeout $Timeout -RadiusScore $Score
        }
    }
}
$have = @(Get-RemoteAccessRadius | Where-Object { $_.ServerName -eq $ServerName -and "$($_.Purpose)" -eq $Purpose })
if ($have.Count -eq 0 -and -not ($changes -match 'VpnAuthType')) {
    $changes += "RADIUS ${Purpose}: add $ServerName port $Port"
    if ($PSCmdlet.ShouldProcess($ServerName, "Add-RemoteAccessRadius -Purpose $Purpose")) {
        Add-RemoteAccessRadius -ServerName $ServerName -Purpose $Purpose -SharedSecret $plain -Port $Port `
            -Timeout $Timeout -Score $Score
    }
}
elseif ($have.Count -gt 0 -and ("$($have[0].Port)" -ne "$Port" -or "$($have[0].Timeout)" -ne "$Timeout" -or "$($have[0].Score)" -ne "$Score")) {
    $changes += "RADIUS $Purpose ${ServerName}: port/timeout/score $($have[0].Port)/$($have[0].Timeout)/$($have[0].Score) -> $Port/$Timeout/$Score"
    if ($PSCmdlet.ShouldProcess($ServerName, "Set-RemoteAccessRadius -Purpose $Purpose")) {
        Set-RemoteAccessRadius -ServerName $ServerName -Purpose $Purpose -Port $Port -Timeout $Timeout -Score $Score
    }
}
$plain = $null
$Ansible.Changed = $changes.Count -gt 0
$Ansible.Result = @{ step = 'radius'; changes = $changes }
