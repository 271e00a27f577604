# Stops before anything is configured when this Windows build lacks the NPS cmdlets.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string[]]$Commands
)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
$missing = @($Commands | Where-Object { -not (Get-Command -Name $_ -ErrorAction SilentlyContinue) })
if ($missing.Count -gt 0) {
    throw ("this Windows build has no NPS module ({0} missing) (fix: install the NPAS feature with management " +
        "tools)") -f ($missing -join ', ')
}
$Ansible.Result = @{ step = 'preflight'; changes = @() }
