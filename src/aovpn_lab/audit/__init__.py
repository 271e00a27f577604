"""Audit a deployed Windows RRAS + NPS gateway against the catalogue (profiles/rras.yml).

    aovpn-lab audit --inventory INV --host rras1          read the server over PSRP
    aovpn-lab audit --from tests/data/rras/out-of-the-box   judge recorded outputs

collect: what is run on the server and where its output comes from (live or recorded);
parse: the text those commands print; judge: findings with requirement, found, expected
and the fix; report: the terminal and JSON views; command: the `audit` subcommand.
"""
