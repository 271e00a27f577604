# One RADIUS client per gateway. The secret arrives as a SecureString and never appears in
# the output; NPS does not give it back, so an existing client keeps its secret unless its
# address changes (then it is set again with the vaulted one).
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][string]$Address,
    [Parameter(Mandatory)][securestring]$SharedSecret
)
$ErrorActionPreference = 'Stop'
$plain = [System.Net.NetworkCredential]::new('', $SharedSecret).Password
$have = Get-NpsRadiusClient | Where-Object Name -eq $Name
$changes = @()
if (-not $have) {
    $changes += "RADIUS client ${Name}: add at $Address"
    if ($PSCmdlet.ShouldProcess($Name, 'New-NpsRadiusClient')) {
        New-NpsRadiusClient -Name $Name -Address $Address -SharedSecret $plain -AuthAttributeRequired $true | Out-Null
    }
}
elseif ("$($have.Address)" -ne $Address -or -not $have.Enabled -or -not $have.AuthAttributeRequired) {
    $changes += "RADIUS client ${Name}: address $($have.Address) -> $Address, enabled, Message-Authenticator required"
    if ($PSCmdlet.ShouldProcess($Name, 'Set-NpsRadiusClient')) {
        Set-NpsRadiusClient -Name $Name -Address $Address -SharedSecret $plain -Enabled $true `
            -AuthAttributeRequired $true | Out-Null
    }
}
$plain = $null
$Ansible.Changed = $changes.Count -gt 0
$Ansible.Result = @{ step = 'radius-client'; changes = $changes }
