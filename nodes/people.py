"""People nodes: a person (identity, place, pose, strength), and people gathered in order."""
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.signals.previews import draw_people
from ..realisid_core.people.people import (MAX_PEOPLE, People, Person, Place, box_from_fractions, people_from_locations,
                                           with_strength)
from .previews import with_preview

PERSON = "RealisID Person"
PEOPLE = "RealisID People"
FROM_LOCATIONS = "RealisID People From Locations"
STRENGTH = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05,
                      "tooltip": "How strongly this person's identity and pose are imposed on their face "
                                 "(multiplies the local branch's effect on this face only)."})


def preview_image(people: People):
    """IMAGE [1, H, W, 3]: the people's places numbered, their poses drawn where the branch puts them."""
    return draw_people(people.locations(), [p.pose for p in people.persons])


def place_from(locations, location_number: int, box: str, node: str) -> Place:
    """A person's place: face `location_number` (1-based) of `locations` when connected, else the typed box."""
    if locations is None:
        return Place(box_from_fractions(box.replace(",", " ").split(), "box"), None, f"{node} box")
    locations = locations.validated("locations")
    if not 1 <= location_number <= locations.count:
        raise RealisIDInputError(input_name="location_number",
                                 problem=f"face {location_number} was asked for but the locations "
                                 f"have {locations.count} face{'s' if locations.count != 1 else ''}",
                                 fix=f"choose a number from 1 to {locations.count}")
    f = location_number - 1
    frame = (locations.width, locations.height) if locations.has_shape else None
    return Place(tuple(locations.boxes[f].tolist()), frame, f"{locations.source(f)}, face {location_number}")


class RealisIDPerson:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "location_number": ("INT", {"default": 1, "min": 1, "max": 64,
                                        "tooltip": "Which face of the connected locations is this person's place "
                                                   "(1 = the first line of Location Guidance, or face 1 of a layout "
                                                   "photo). Ignored when no locations are connected."}),
            "box": ("STRING", {"default": "0.5 0.4 0.3 0.3",
                               "tooltip": "The face's box when no locations are connected: centre x, centre y, width, "
                                          "height, each a fraction of the picture (0.5 = the middle)."}),
            "strength": STRENGTH,
        }, "optional": {
            "locations": ("FACE_LOCATIONS", {"tooltip": "Where faces go (Location Guidance, Locations From Faces or "
                                                        "From Mask); this person takes face 'location_number'."}),
            "identity": ("REALISID_IDENTITY", {"tooltip": "Who this is: RealisID Identity from one or a few photos."}),
            "id_tokens": ("REALISID_ID_TOKENS", {"tooltip": "Who this is, as ready identity tokens (instead of "
                                                            "'identity')."}),
            "pose": ("REALISID_POSE", {"tooltip": "The pose and expression this face takes (RealisID Pose & "
                                                  "Expression). Without it: facing the camera, neutral."}),
        }}

    RETURN_TYPES = ("REALISID_PERSON",)
    RETURN_NAMES = ("person",)
    FUNCTION = "make"
    CATEGORY = "RealisID/people"
    DESCRIPTION = "One person: who (identity), where (a face place), looking how (pose and expression), how strongly."

    def make(self, location_number, box, strength, locations=None, identity=None, id_tokens=None, pose=None):
        if identity is not None and id_tokens is not None:
            raise RealisIDInputError(input_name="id_tokens",
                                     problem="both an identity and identity tokens are connected",
                                     fix="connect one of them")
        for name, value in (("identity", identity), ("id_tokens", id_tokens)):
            if value is not None and value.count != 1:
                raise RealisIDInputError(input_name=name, problem=f"it holds {value.count} people, a Person is one",
                                         fix="connect RealisID Identity made from photos of this one person")
        if pose is not None and len(pose) != 1:
            raise RealisIDInputError(input_name="pose", problem=f"it holds {len(pose)} poses, a Person takes one",
                                     fix="set RealisID Pose & Expression's face_number to the face to use")
        place = place_from(locations, location_number, box, PERSON)
        return (Person(place, identity, id_tokens, None if pose is None else pose[0], float(strength)),)


class RealisIDPeople:
    @classmethod
    def INPUT_TYPES(cls):
        persons = {f"person_{k}": ("REALISID_PERSON", {"tooltip": f"Person {k} of this list."})
                   for k in range(1, MAX_PEOPLE + 1)}
        return {"required": {}, "optional": {
            "people": ("REALISID_PEOPLE", {"tooltip": "People gathered before: they come first, then person_1, ..."}),
            **persons}}

    RETURN_TYPES = ("REALISID_PEOPLE", "IMAGE")
    RETURN_NAMES = ("people", "preview")
    FUNCTION = "gather"
    CATEGORY = "RealisID/people"
    DESCRIPTION = ("Gathers people in order (earlier 'people' first, then person 1, 2, ...); the preview shows each "
                   "person's place, number and pose.")

    def gather(self, people=None, **persons):
        ordered = [persons[k] for k in sorted(persons, key=lambda k: int(k.split("_")[1])) if persons[k] is not None]
        gathered = (people or People(())) + People(tuple(ordered))
        if gathered.count == 0:
            raise RealisIDInputError(input_name="person_1",
                                     problem="no person is connected", fix="connect at least one RealisID Person")
        preview = preview_image(gathered)
        return with_preview((gathered, preview), preview)


class RealisIDPeopleFromLocations:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "locations": ("FACE_LOCATIONS", {"tooltip": "One person per face location, in its order (line k of "
                                                        "Location Guidance = person k)."}),
            "strength": STRENGTH,
        }, "optional": {
            "identities": ("REALISID_IDENTITY", {"tooltip": "One identity per location (RealisID Identity Batch, in "
                                                            "person order), or one for everybody."}),
            "id_tokens": ("REALISID_ID_TOKENS", {"tooltip": "Identity tokens instead of identities: one set per "
                                                            "location, or one for everybody."}),
            "poses": ("REALISID_POSE", {"tooltip": "One pose per location, or one for everybody."}),
        }}

    RETURN_TYPES = ("REALISID_PEOPLE", "IMAGE")
    RETURN_NAMES = ("people", "preview")
    FUNCTION = "make"
    CATEGORY = "RealisID/people"
    DESCRIPTION = "Many people at once: person k goes to face location k, with identity k and pose k."

    def make(self, locations, strength, identities=None, id_tokens=None, poses=None):
        locations = locations.validated("locations")
        for name, count in (("identities", None if identities is None else identities.count),
                            ("id_tokens", None if id_tokens is None else id_tokens.count),
                            ("poses", None if poses is None else len(poses))):
            if count is not None and count not in (1, locations.count):
                raise RealisIDInputError(input_name=name, problem=f"{count} were given for {locations.count} locations",
                                         fix=f"give one per location ({locations.count}) or a single one for everybody")
        if identities is not None and id_tokens is not None:
            raise RealisIDInputError(input_name="id_tokens",
                                     problem="both identities and identity tokens are connected",
                                     fix="connect one of them")
        people = people_from_locations(locations, identities, id_tokens, None if poses is None else list(poses))
        people = People(tuple(with_strength(p, strength) for p in people.persons))
        preview = preview_image(people)
        return with_preview((people, preview), preview)


NODE_CLASS_MAPPINGS = {
    "RealisID_Person": RealisIDPerson,
    "RealisID_People": RealisIDPeople,
    "RealisID_PeopleFromLocations": RealisIDPeopleFromLocations,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RealisID_Person": PERSON,
    "RealisID_People": PEOPLE,
    "RealisID_PeopleFromLocations": FROM_LOCATIONS,
}
