"""Meta-learning algorithms behind one interface (`base.MetaLearner`)."""

from supervised_reptile.algorithms.base import Algorithm, MetaLearner
from supervised_reptile.algorithms.maml import MAML, maml_cross_entropy
from supervised_reptile.algorithms.pretrained import Oracle, Pretrained
from supervised_reptile.algorithms.reptile import FOML, Reptile, summed_cross_entropy

__all__ = ["Algorithm", "MetaLearner", "Reptile", "FOML", "MAML", "Pretrained", "Oracle", "summed_cross_entropy",
           "maml_cross_entropy"]
