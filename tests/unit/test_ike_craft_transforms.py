"""Transform table and proposal spelling conversions (aovpn_lab.ike.transforms)."""

import pytest

from aovpn_lab.ike import transforms as tf


@pytest.mark.parametrize(
    "name, ttype, tid, klen",
    [
        ("3des", tf.ENCR, 3, None),
        ("aes128", tf.ENCR, 12, 128),
        ("aes192", tf.ENCR, 12, 192),
        ("aes256", tf.ENCR, 12, 256),
        ("aes128gcm16", tf.ENCR, 20, 128),
        ("aes256gcm16", tf.ENCR, 20, 256),
        ("sha1_96", tf.INTEG, 2, None),
        ("sha256_128", tf.INTEG, 12, None),
        ("sha384_192", tf.INTEG, 13, None),
        ("prfsha1", tf.PRF, 2, None),
        ("prfsha256", tf.PRF, 5, None),
        ("prfsha384", tf.PRF, 6, None),
        ("modp768", tf.DH, 1, None),
        ("modp1024", tf.DH, 2, None),
        ("modp2048", tf.DH, 14, None),
        ("ecp256", tf.DH, 19, None),
        ("ecp384", tf.DH, 20, None),
    ],
)
def test_profile_names_map_to_iana_ids(name, ttype, tid, klen):
    alg = tf.lookup(name)
    assert (alg.type, alg.id, alg.key_length) == (ttype, tid, klen)
    assert alg.name == name


@pytest.mark.parametrize(
    "token, profile_name",
    [("AES128", "aes128"), ("DES3", "3des"), ("GCMAES128", "aes128gcm16"),
     ("AES_GCM_128", "aes128gcm16"), ("AES_GCM_256", "aes256gcm16"), ("SHA196", "sha1_96"),
     ("SHA256", "sha256_128"), ("SHA384", "sha384_192"), ("Group2", "modp1024"),
     ("Group14", "modp2048"), ("Group1", "modp768"), ("ECP256", "ecp256"),
     ("ECP384", "ecp384"), ("Group24", "modp2048s256"), ("sha1", "sha1_96"),
     ("sha256", "sha256_128")],
)
def test_windows_and_strongswan_tokens(token, profile_name):
    assert tf.lookup(token).name == profile_name


@pytest.mark.parametrize(
    "strongswan, windows, ids",
    [
        ("aes128-sha256-modp2048", "AES128-SHA256-Group14",
         [(1, 12, 128), (2, 5, None), (3, 12, None), (4, 14, None)]),
        ("3des-sha1-modp1024", "DES3-SHA196-Group2",
         [(1, 3, None), (2, 2, None), (3, 2, None), (4, 2, None)]),
        ("aes256-sha384-ecp384", "AES256-SHA384-ECP384",
         [(1, 12, 256), (2, 6, None), (3, 13, None), (4, 20, None)]),
        ("aes128gcm16-prfsha256-ecp256", "GCMAES128-SHA256-ECP256",
         [(1, 20, 128), (2, 5, None), (4, 19, None)]),
        ("aes128gcm16-prfsha256-modp2048", "GCMAES128-SHA256-Group14",
         [(1, 20, 128), (2, 5, None), (4, 14, None)]),
        ("aes256gcm16-prfsha384-ecp384", "GCMAES256-SHA384-ECP384",
         [(1, 20, 256), (2, 6, None), (4, 20, None)]),
    ],
)
def test_convert_both_ways(strongswan, windows, ids):
    assert tf.convert_proposal(strongswan) == windows
    assert tf.convert_proposal(windows) == strongswan
    assert tf.to_transform_ids(strongswan) == ids
    assert tf.to_transform_ids(windows) == ids
    assert tf.to_strongswan(windows) == strongswan
    assert tf.to_windows(strongswan) == windows


def test_windows_separators_order_and_client_gcm_spelling():
    a = tf.parse_proposal("GCMAES128, SHA256, Group14")
    b = tf.parse_proposal("SHA256 AES_GCM_128 DHGroup14")  # integrity written first
    c = tf.parse_proposal("aes128gcm16-prfsha256-modp2048")
    assert a == b == c
    assert a.aead and not a.integ
    assert tf.to_windows("aes128-sha256-modp2048", sep=", ") == "AES128, SHA256, Group14"


def test_implied_prf_and_explicit_prf():
    p = tf.parse_proposal("aes128-sha256-modp2048")
    assert [x.name for x in p.prf] == ["prfsha256"]
    q = tf.parse_proposal("aes128-sha256-prfsha384-modp2048")
    assert [x.name for x in q.prf] == ["prfsha384"]
    assert q.strongswan() == "aes128-sha256-prfsha384-modp2048"
    with pytest.raises(ValueError, match="PRF"):
        q.windows()  # Windows uses IntegrityCheckMethod as PRF


def test_multi_algorithm_proposal():
    p = tf.parse_proposal("aes256-aes128-sha256-sha1-modp2048-ecp256")
    assert [a.strongswan for a in p.encr] == ["aes256", "aes128"]
    assert p.dh_groups == [14, 19]
    assert p.strongswan() == "aes256-aes128-sha256-sha1-modp2048-ecp256"
    assert len(p.transform_ids()) == 8
    with pytest.raises(ValueError, match="exactly one"):
        p.windows()


def test_unknown_token_error_names_token_and_known_names():
    with pytest.raises(ValueError) as exc:
        tf.parse_proposal("aes128-sha257-modp2048")
    msg = str(exc.value)
    assert "'sha257'" in msg
    assert "aes128gcm16" in msg and "modp2048" in msg  # strongSwan names listed
    assert "GCMAES128" in msg and "Group14" in msg  # Windows names listed
    with pytest.raises(ValueError, match="'Group99'"):
        tf.parse_proposal("AES128-SHA256-Group99")
    with pytest.raises(ValueError, match="'nope'"):
        tf.lookup("nope")


@pytest.mark.parametrize(
    "text, match",
    [
        ("aes128-sha256", "no DH group"),
        ("sha256-modp2048", "no encryption"),
        ("aes128-modp2048", "no integrity"),
        ("aes128gcm16-modp2048", "needs a PRF"),
        ("aes128gcm16-sha256-prfsha256-modp2048", "no integrity algorithm"),
        ("aes128-aes128gcm16-sha256-modp2048", "mixes AEAD"),
        ("", "empty"),
    ],
)
def test_invalid_proposals(text, match):
    with pytest.raises(ValueError, match=match):
        tf.parse_proposal(text)


def test_not_expressible_in_windows():
    with pytest.raises(ValueError, match="no Windows"):
        tf.to_windows("aes128-sha256-curve25519")
    with pytest.raises(ValueError, match="no Windows"):
        tf.to_windows("aes128-sha512-modp2048")


def test_detect_spelling():
    assert tf.detect_spelling("aes128-sha256-modp2048") == "strongswan"
    assert tf.detect_spelling("AES128-SHA256-Group14") == "windows"
    assert tf.detect_spelling("GCMAES128 SHA256 ECP256") == "windows"
    assert tf.detect_spelling("aes128-sha256-ecp256") == "strongswan"  # ambiguous, lower case
    assert tf.detect_spelling("AES128-SHA256-ECP256") == "windows"


def test_reverse_lookups():
    assert tf.algorithm_by_id(tf.ENCR, 12, 256).strongswan == "aes256"
    assert tf.algorithm_by_id(tf.ENCR, 12, None) is None
    assert tf.dh_group_name(14) == "modp2048"
    assert tf.dh_group_name(19) == "ecp256"
    assert tf.dh_group_name(999) == "group999"
    assert tf.dh_group_name(None) is None


def test_table_is_consistent():
    seen = set()
    for alg in tf.ALGORITHMS:
        key = (alg.type, alg.id, alg.key_length)
        assert key not in seen, alg
        seen.add(key)
        if alg.type == tf.DH:
            assert alg.id in tf.DH_KE_LENGTH, alg
        assert alg.aead == (alg.type == tf.ENCR and alg.id == 20)
