"""The paper's names of its methods, as the report, the tables, MLflow and the study spell them:
a classifier trained on a domain (classifier.domains names each domain's), and Anchor 1."""

# The paper's methods: a classifier trained on a domain, and Anchor 1 (the original-trained
# model on decoded images, not retrained). "Comp. (y)" and "Comp. (sigma)": the ablations.
ANCHOR3, ANCHOR1, ANCHOR2, COMP = "Anchor 3", "Anchor 1", "Anchor 2", "Comp."
COMP_INPUTS = {"both": COMP, "y": "Comp. (y)", "sigma": "Comp. (sigma)"}
COMP_RATES = "Comp. (every rate)"  # one cResNet-39 trained on the latents of every quality
# Anchor 2 trained for as many epochs as a Comp. that starts from a trained Anchor 2 has had in
# all (that Anchor 2's and its own): the reference of equal training budget
ANCHOR2_EQUAL = "Anchor 2 (equal budget)"
METHOD_ORDER = (ANCHOR3, ANCHOR1, ANCHOR2, ANCHOR2_EQUAL, COMP, COMP_RATES, COMP_INPUTS["y"],
                COMP_INPUTS["sigma"])
