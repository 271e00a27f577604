def diagnose(c, s): raise NotImplementedError
class Diagnosis: pass
CAUSES = ()
