# One network policy: VPN connections (NAS-Port-Type Virtual) of a Windows user or machine
# group, allowed EAP types (msNPAllowedEapType: 13 EAP-TLS, 25 PEAP). NPS has no cmdlet for
# network policies: the current state is read from Export-NpsConfiguration's XML and a
# missing or different policy is written with `netsh nps`, judged by its exit status.
[CmdletBinding(SupportsShouldProcess)]
param(
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][uint32]$ProcessingOrder,
    [Parameter(Mandatory)][ValidateSet('user', 'machine')][string]$GroupKind,
    [Parameter(Mandatory)][string]$Group,
    [Parameter(Mandatory)][uint32[]]$EapTypes
)
$ErrorActionPreference = 'Stop'
try {
    $sid = ([System.Security.Principal.NTAccount]::new($Group)).Translate([System.Security.Principal.SecurityIdentifier]).Value
}
catch {
    throw "group '$Group' is not known to this server (fix: create it in AD, or correct nps_${GroupKind}_group)"
}
$conditionId = @{ user = '0x1fb5'; machine = '0x1fb4' }[$GroupKind]   # Windows-User-Groups / Windows-Machine-Groups
$export = Join-Path $Ansible.Tmpdir 'nps.xml'
Export-NpsConfiguration -Path $export
[xml]$config = Get-Content -Path $export -Raw
$policy = $config.SelectSingleNode("//NetworkPolicy/Children/*[@name='$Name']")
$haveEap = @()
if ($policy) { $haveEap = @($policy.SelectNodes('.//msNPAllowedEapType') | ForEach-Object { [uint32]$_.InnerText }) }
$changes = @()
$verb = $null
if (-not $policy) { $verb = 'add'; $changes += "network policy ${Name}: add (EAP types $($EapTypes -join ','))" }
elseif (($($haveEap | Sort-Object) -join ',') -ne (($EapTypes | Sort-Object) -join ',')) {
    $verb = 'set'; $changes += "network policy ${Name}: EAP types $($haveEap -join ',') -> $($EapTypes -join ',')"
}
if ($verb -and $PSCmdlet.ShouldProcess($Name, "netsh nps $verb np")) {
    $arguments = @('nps', "$verb", 'np', "name=`"$Name`"", 'state=enable', "processingorder=$ProcessingOrder",
        "conditionid=$conditionId", "conditiondata=`"$sid`"", 'conditionid=0x3d', 'conditiondata=5')
    foreach ($type in $EapTypes) { $arguments += @('profileid=0x100a', ('profiledata=0x{0:x}' -f $type)) }
    & netsh.exe @arguments | Out-Null
    if ($LASTEXITCODE -ne 0) {
        throw "netsh nps $verb np '$Name' exited $LASTEXITCODE (fix: run it by hand on the NPS server to see why; see docs/windows.md)"
    }
}
$Ansible.Changed = $changes.Count -gt 0
$Ansible.Result = @{ step = 'network-policy'; changes = $changes }
