# Stops before anything is configured when this Windows build lacks the RemoteAccess
# cmdlets the play uses (a Server Core without the management tools, a client SKU).
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string[]]$Commands
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
$missing = @($Commands | Where-Object { -not (Get-Command -Name $_ -ErrorAction SilentlyContinue) })
if ($missing.Count -gt 0) {
    throw ("this Windows build has no RemoteAccess module ({0} missing) (fix: install the DirectAccess-VPN " +
        "feature with management tools, on Windows Server 2016 or later)") -f ($missing -join ', ')
}
$Ansible.Result = @{ step = 'preflight'; changes = @() }
