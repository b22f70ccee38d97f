"""Self-consistent bootstrapping (describe a box, ground the description, keep it if IoU >= lambda).

Model handlers, prompt builders, answer parsers and the IoU decision arrive with the bootstrap stage; the IoU
itself is `rcforge.boxes.iou`.
"""
